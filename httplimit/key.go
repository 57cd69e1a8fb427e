package httplimit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// KeyFunc names the client of a request: requests with one key share one
// limit. An empty key skips limiting for the request. An error is answered
// by the error handler (500 by default). Any function is a KeyFunc, for
// example one that reads a user id from the request's context.
type KeyFunc func(r *http.Request) (string, error)

// ByHeader keys requests by the value of the header name, for example
// "X-API-Key". A request without the header, or with it empty, is not
// limited: put authentication in front, or use a KeyFunc of your own that
// falls back to another key.
func ByHeader(name string) KeyFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (string, error) {
		return r.Header.Get(name), nil
	}
}

// ByIP keys requests by client IP address, as text (IPv4-mapped IPv6
// addresses in their IPv4 form, zones removed).
//
// The client is the host of Request.RemoteAddr, unless that address is in
// one of the trusted proxy prefixes. Then X-Forwarded-For is read from the
// right, skipping addresses that are themselves in a trusted prefix, and the
// first untrusted address is the client. Entries left of it are not read: a
// client can write anything there, but each trusted proxy appends the peer
// it saw, so the rightmost untrusted entry is the one no client can forge.
// Several X-Forwarded-For lines count as one list, in order.
//
// When every address is trusted, the leftmost one is the client. An entry
// that is not an IP address (ports and brackets are accepted) stops the
// walk: the key is then the address of the trusted proxy that wrote it, so
// the clients behind it share a limit rather than escape one.
//
// An error is returned only when RemoteAddr holds no IP address, as with
// some Unix-socket listeners.
func ByIP(trusted ...netip.Prefix) KeyFunc {
	t := newTrust(trusted)
	return func(r *http.Request) (string, error) {
		return t.client(r, r.Header.Values("X-Forwarded-For"), splitXFF)
	}
}

// ByForwarded is ByIP reading the for= parameter of the RFC 7239 Forwarded
// header instead of X-Forwarded-For. Quoted values, bracketed IPv6 and
// ports are understood; an element without for=, or with "unknown" or an
// obfuscated identifier, stops the walk like a malformed entry.
//
// Choose the header your proxies append to: ByIP for X-Forwarded-For,
// ByForwarded for Forwarded. Neither reads the other, because a proxy that
// appends to one header passes the other on from the client untouched.
func ByForwarded(trusted ...netip.Prefix) KeyFunc {
	t := newTrust(trusted)
	return func(r *http.Request) (string, error) {
		return t.client(r, r.Header.Values("Forwarded"), splitForwarded)
	}
}

// trust is a set of trusted proxy prefixes.
type trust []netip.Prefix

func newTrust(prefixes []netip.Prefix) trust {
	t := make(trust, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are unmapped
			// before they are compared.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		t = append(t, p.Masked())
	}
	return t
}

func (t trust) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var errNoRemoteIP = errors.New("RemoteAddr holds no IP address")

// client returns the client address of r, walking the hops that split takes
// out of the header lines when the peer is a trusted proxy.
func (t trust) client(r *http.Request, lines []string, split func([]string) []string) (string, error) {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return "", fmt.Errorf("%w: %q", errNoRemoteIP, r.RemoteAddr)
	}
	if !t.contains(peer) || len(lines) == 0 {
		return peer.String(), nil
	}
	hops := split(lines)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break // the last trusted hop's view is all we can trust
		}
		peer = a
		if !t.contains(a) {
			break
		}
	}
	return peer.String(), nil
}

// parseHop parses an address as a hop may write it: "192.0.2.1",
// "192.0.2.1:8080", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:8080",
// surrounding spaces allowed. Zones are removed and IPv4-mapped addresses
// unmapped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h // "v4:port" or "[v6]:port"
		} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			host = s[1 : len(s)-1]
		} else {
			return netip.Addr{}, false
		}
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}

// splitXFF returns the entries of X-Forwarded-For lines, in order.
func splitXFF(lines []string) []string {
	var hops []string
	for _, line := range lines {
		hops = append(hops, strings.Split(line, ",")...)
	}
	return hops
}

// splitForwarded returns the for= value of each element of Forwarded lines,
// in order, unquoted; "" for an element without one, so that it stops the
// walk.
func splitForwarded(lines []string) []string {
	var hops []string
	for _, line := range lines {
		for _, elem := range splitQuoted(line, ',') {
			hop := ""
			for _, pair := range splitQuoted(elem, ';') {
				name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(name), "for") {
					hop = unquote(strings.TrimSpace(value))
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}

// splitQuoted splits s at sep, except inside quoted strings.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++ // the escaped byte cannot end the string
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unquote removes the quotes and escapes of an RFC 9110 quoted-string, and
// returns a token as it is. An unterminated string gives "".
func unquote(s string) string {
	if len(s) == 0 || s[0] != '"' {
		return s
	}
	if len(s) < 2 || s[len(s)-1] != '"' {
		return ""
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
