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

// MaxHops is the most entries that ByIP and ByForwarded read from the right
// of the forwarding headers. A chain of trusted proxies is seldom more than a
// few hops long; the cap keeps the cost of a key the same whatever the
// length of the headers, which a client controls.
const MaxHops = 32

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
// When every address read is trusted, the leftmost one read is the client.
// At most MaxHops entries are read: behind a longer chain of trusted
// proxies, the client is the proxy MaxHops entries from the right. An entry
// that is not an IP address (ports and brackets are accepted) stops the
// walk: the key is then the address of the trusted proxy that wrote it, so
// the clients behind it share a limit rather than escape one.
//
// An error is returned only when RemoteAddr holds no IP address, as with
// some Unix-socket listeners.
func ByIP(trusted ...netip.Prefix) KeyFunc {
	t := newTrust(trusted)
	return func(r *http.Request) (string, error) {
		return t.client(r, r.Header.Values("X-Forwarded-For"), lastXFF)
	}
}

// ByForwarded is ByIP reading the for= parameter of the RFC 7239 Forwarded
// header instead of X-Forwarded-For. Quoted values, bracketed IPv6 and
// ports are understood; an element without for=, with for= twice, with
// "unknown" or an obfuscated identifier, or that is malformed (an
// unterminated quoted string, for example) stops the walk like a malformed
// entry. Elements are read from the right, so a malformed element stops the
// walk only when it is reached: the elements right of it, which the trusted
// proxies appended, are still read.
//
// Choose the header your proxies append to: ByIP for X-Forwarded-For,
// ByForwarded for Forwarded. Neither reads the other, because a proxy that
// appends to one header passes the other on from the client untouched.
func ByForwarded(trusted ...netip.Prefix) KeyFunc {
	t := newTrust(trusted)
	return func(r *http.Request) (string, error) {
		return t.client(r, r.Header.Values("Forwarded"), lastForwarded)
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

// lastHop takes the last entry off a header line: hop is its address as
// written, rest the line left of it, and more is false when the entry was the
// first of the line. ok is false when the entry is malformed.
type lastHop func(line string) (hop, rest string, more, ok bool)

// client returns the client address of r, walking the hops that last takes
// off the header lines, from the right, when the peer is a trusted proxy.
// No more than MaxHops entries are read, and the lines are never split
// whole: the cost does not grow with their length.
func (t trust) client(r *http.Request, lines []string, last lastHop) (string, error) {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return "", fmt.Errorf("%w: %q", errNoRemoteIP, r.RemoteAddr)
	}
	if !t.contains(peer) {
		return peer.String(), nil
	}
	read := 0
walk:
	for i := len(lines) - 1; i >= 0; i-- {
		line, more := lines[i], true
		for more {
			if read == MaxHops {
				break walk
			}
			read++
			hop, rest, next, wellFormed := last(line)
			if !wellFormed {
				break walk // the last trusted hop's view is all we can trust
			}
			a, isAddr := parseHop(hop)
			if !isAddr {
				break walk
			}
			peer = a
			if !t.contains(a) {
				break walk
			}
			line, more = rest, next
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

// lastXFF is the lastHop of X-Forwarded-For: entries are separated by
// commas.
func lastXFF(line string) (hop, rest string, more, ok bool) {
	i := strings.LastIndexByte(line, ',')
	if i < 0 {
		return line, "", false, true
	}
	return line[i+1:], line[:i], true, true
}

// lastForwarded is the lastHop of Forwarded (RFC 7239): the hop is the
// value of the for= pair of the last element, unquoted. The element is read
// from its right end, so what a client wrote left of it, an unterminated
// quoted string included, cannot change how it reads.
//
//	Forwarded         = 1#forwarded-element
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// Spaces and tabs are allowed around the delimiters, and an unquoted value
// may hold ':', '[' and ']' (a bare IPv6 address), as some proxies write.
// An element without for=, or with for= twice, is malformed.
func lastForwarded(line string) (hop, rest string, more, ok bool) {
	found := false
	i := trimLeftOWS(line, len(line)) // line[:i] is still to read
	for {
		if i > 0 && line[i-1] != ';' && line[i-1] != ',' {
			value, j, ok := lastValue(line, i)
			if !ok {
				return "", "", false, false
			}
			i = trimLeftOWS(line, j)
			if i == 0 || line[i-1] != '=' {
				return "", "", false, false
			}
			i = trimLeftOWS(line, i-1)
			j = i
			for j > 0 && isTokenByte(line[j-1]) {
				j--
			}
			if j == i {
				return "", "", false, false
			}
			if strings.EqualFold(line[j:i], "for") {
				if found {
					return "", "", false, false
				}
				hop, found = value, true
			}
			i = trimLeftOWS(line, j)
		}
		switch {
		case i == 0:
			more = false
		case line[i-1] == ',':
			more, rest = true, line[:i-1]
		case line[i-1] == ';':
			i = trimLeftOWS(line, i-1)
			continue
		default:
			return "", "", false, false
		}
		if !found {
			return "", "", false, false
		}
		hop, ok = unquote(hop)
		return hop, rest, more, ok
	}
}

// lastValue returns the value that ends at line[i-1], a token or a quoted
// string with its quotes, and the index where it starts. ok is false when
// no value ends there.
func lastValue(line string, i int) (value string, start int, ok bool) {
	j := i - 1
	if line[j] != '"' {
		for j >= 0 && (isTokenByte(line[j]) || line[j] == ':' || line[j] == '[' || line[j] == ']') {
			j--
		}
		return line[j+1 : i], j + 1, j+1 < i
	}
	if backslashesBefore(line, j)%2 == 1 {
		return "", 0, false // an escaped quote ends no string
	}
	// The opening quote is the first one to the left that is not escaped:
	// inside a quoted string, a run of backslashes before a quote is even
	// only when the quote ends the string.
	for j--; j >= 0; j-- {
		switch c := line[j]; {
		case c == '"':
			if backslashesBefore(line, j)%2 == 0 {
				return line[j:i], j, true
			}
		case c < ' ' && c != '\t', c == 0x7f:
			return "", 0, false
		}
	}
	return "", 0, false
}

// backslashesBefore counts the backslashes that run up to line[i].
func backslashesBefore(line string, i int) int {
	n := 0
	for i > 0 && line[i-1] == '\\' {
		n++
		i--
	}
	return n
}

// trimLeftOWS returns the index before the spaces and tabs that end line[:i].
func trimLeftOWS(line string, i int) int {
	for i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') {
		i--
	}
	return i
}

// isTokenByte reports whether c is a tchar of RFC 9110.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// maxEscapedHop is the longest quoted value with backslash escapes that
// unquote decodes: no address is longer, and the copy stays small.
const maxEscapedHop = 128

// unquote removes the quotes and escapes of an RFC 9110 quoted-string, and
// returns a token as it is. ok is false for a quoted string too long to be
// an address.
func unquote(s string) (string, bool) {
	if len(s) == 0 || s[0] != '"' {
		return s, true
	}
	s = s[1 : len(s)-1]
	if strings.IndexByte(s, '\\') < 0 {
		return s, true
	}
	if len(s) > maxEscapedHop {
		return "", false
	}
	var buf [maxEscapedHop]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		buf[n] = s[i]
		n++
	}
	return string(buf[:n]), true
}
