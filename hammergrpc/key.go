package hammergrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// KeyFunc names the client of a call of fullMethod ("/package.Service/Method"):
// calls with one key share one limit. An empty key skips limiting for the
// call: it goes on, with no rate limit metadata, and nothing is counted. An
// error, or a panic, is answered by the error handler (codes.Internal by
// default). Any function is a KeyFunc, for example one that reads a user id
// that an authentication interceptor put in the context.
type KeyFunc func(ctx context.Context, fullMethod string) (string, error)

var (
	errNoPeer    = errors.New("no peer in the context")
	errPeerNotIP = errors.New("the peer address holds no IP address")
	errBadMDKey  = errors.New("invalid metadata key")
)

// ByPeer keys calls by the IP address of the peer, as text, without the
// port (IPv4-mapped IPv6 addresses in their IPv4 form, zones removed). It
// does not read forwarding metadata such as x-forwarded-for: behind a proxy
// every call has the proxy's address. Use a KeyFunc of your own there.
//
// It returns an error when the context holds no peer, or when the peer's
// address holds no IP address, as over a Unix socket or an in-memory
// listener.
func ByPeer() KeyFunc {
	return func(ctx context.Context, _ string) (string, error) {
		p, ok := peer.FromContext(ctx)
		if !ok || p.Addr == nil {
			return "", errNoPeer
		}
		a, ok := peerIP(p.Addr)
		if !ok {
			return "", fmt.Errorf("%w: %s %q", errPeerNotIP, p.Addr.Network(), p.Addr.String())
		}
		return a.String(), nil
	}
}

// peerIP returns the IP address of a peer address: a TCP or UDP address,
// or any address whose String is "ip:port" or "ip".
func peerIP(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	default:
		s := a.String()
		if ap, err := netip.ParseAddrPort(s); err == nil {
			ip = ap.Addr()
		} else if ip, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, false
		}
	}
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	return ip.WithZone("").Unmap(), true
}

// ByMetadata keys calls by the first value of the incoming metadata key
// name, for example "x-api-key" (metadata keys are not case-sensitive). A
// call without it, or with it empty, is not limited: put authentication in
// front, or use a KeyFunc of your own that falls back to another key.
//
// A name that cannot be a metadata key (empty, or with a byte other than
// 0-9, a-z, A-Z, '-', '_' and '.') gives a KeyFunc that fails every call,
// with codes.Internal by default: a call is never let through unlimited
// for a typo in the configuration.
func ByMetadata(name string) KeyFunc {
	if !validMDKey(name) {
		err := fmt.Errorf("%w %q", errBadMDKey, name)
		return func(context.Context, string) (string, error) { return "", err }
	}
	name = strings.ToLower(name) // the form metadata keys arrive in
	return func(ctx context.Context, _ string) (string, error) {
		if v := metadata.ValueFromIncomingContext(ctx, name); len(v) > 0 {
			return v[0], nil
		}
		return "", nil
	}
}

// validMDKey reports whether name can be a gRPC metadata key, in any case.
func validMDKey(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// ByMethod keys calls by their full method name: all the clients of a
// method share one limit, a cap on the load of that method.
func ByMethod() KeyFunc {
	return func(_ context.Context, fullMethod string) (string, error) {
		return fullMethod, nil
	}
}

// callKey calls key, and turns its error or its panic into an error
// wrapping ErrKey.
func callKey(ctx context.Context, key KeyFunc, fullMethod string) (k string, err error) {
	defer func() {
		v := recover()
		switch e, isErr := v.(error); {
		case v == nil:
		case isErr:
			k, err = "", fmt.Errorf("%w: key function panicked: %w", ErrKey, e)
		default:
			k, err = "", fmt.Errorf("%w: key function panicked: %v", ErrKey, v)
		}
	}()
	k, err = key(ctx, fullMethod)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKey, err)
	}
	return k, nil
}
