package httplimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var proxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
	netip.MustParsePrefix("::ffff:172.16.0.0/108"), // 172.16.0.0/12, mapped
}

func request(remote string, header string, values ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for _, v := range values {
		r.Header.Add(header, v)
	}
	return r
}

func TestByIP(t *testing.T) {
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"untrusted remote with XFF", "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted remote, spoofed trusted XFF", "203.0.113.7:5555", []string{"10.0.0.1"}, "203.0.113.7"},
		{"trusted proxy, one hop", "10.0.0.2:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy, no header", "10.0.0.2:80", nil, "10.0.0.2"},
		{"client prepends fakes", "10.0.0.2:80", []string{"1.2.3.4, 10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.0.0.2:80", []string{"1.2.3.4, 198.51.100.1, 10.0.0.5, 10.0.0.3"}, "198.51.100.1"},
		{"split over lines", "10.0.0.2:80", []string{"1.2.3.4, 198.51.100.1", "10.0.0.5"}, "198.51.100.1"},
		{"all trusted", "10.0.0.2:80", []string{"10.0.0.9, 10.0.0.5"}, "10.0.0.9"},
		{"malformed right after the proxy", "10.0.0.2:80", []string{"198.51.100.1, garbage"}, "10.0.0.2"},
		{"malformed behind a trusted hop", "10.0.0.2:80", []string{"1.2.3.4, bad, 10.0.0.5"}, "10.0.0.5"},
		{"empty entry", "10.0.0.2:80", []string{"198.51.100.1, "}, "10.0.0.2"},
		{"malformed left of the client is not read", "10.0.0.2:80", []string{"bad, 198.51.100.1"}, "198.51.100.1"},
		{"entry with port", "10.0.0.2:80", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"bracketed IPv6 entry", "10.0.0.2:80", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"bracketed IPv6 entry with port", "10.0.0.2:80", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv6 remote", "[2001:db8::7]:443", nil, "2001:db8::7"},
		{"IPv6 remote with zone", "[fe80::1%eth0]:443", nil, "fe80::1"},
		{"IPv4-mapped remote", "[::ffff:203.0.113.7]:443", nil, "203.0.113.7"},
		{"IPv4-mapped trusted proxy", "[::ffff:10.0.0.2]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"mapped prefix trusts IPv4", "172.16.3.4:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted proxy, mapped client", "[fd00::1]:80", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"zone in entry", "[fd00::1]:80", []string{"fe80::9%en0"}, "fe80::9"},
		{"remote without port", "203.0.113.7", nil, "203.0.113.7"},
	}
	key := ByIP(proxies...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := key(request(c.remote, "X-Forwarded-For", c.xff...))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestByIPIgnoresForwarded(t *testing.T) {
	r := request("10.0.0.2:80", "Forwarded", "for=198.51.100.1")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	got, err := ByIP(proxies...)(r)
	require.NoError(t, err)
	assert.Equal(t, "203.0.113.9", got)
}

func TestByIPNoTrust(t *testing.T) {
	got, err := ByIP()(request("10.0.0.2:80", "X-Forwarded-For", "198.51.100.1"))
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.2", got)
}

func TestByIPBadRemote(t *testing.T) {
	for _, remote := range []string{"", "@", "not-an-ip:80"} {
		_, err := ByIP(proxies...)(request(remote, "X-Forwarded-For", "198.51.100.1"))
		assert.Error(t, err, "%q", remote)
	}
}

func TestByForwarded(t *testing.T) {
	cases := []struct {
		name   string
		remote string
		fwd    []string
		want   string
	}{
		{"untrusted remote", "203.0.113.7:5555", []string{"for=198.51.100.1"}, "203.0.113.7"},
		{"one hop", "10.0.0.2:80", []string{"for=198.51.100.1;proto=https"}, "198.51.100.1"},
		{"case-insensitive name", "10.0.0.2:80", []string{"For=198.51.100.1"}, "198.51.100.1"},
		{"quoted IPv6 with port", "10.0.0.2:80", []string{`for="[2001:db8::1]:4711"`}, "2001:db8::1"},
		{"quoted IPv6", "10.0.0.2:80", []string{`for="[2001:db8::1]"`}, "2001:db8::1"},
		{"IPv4 with port", "10.0.0.2:80", []string{`for="198.51.100.1:4711"`}, "198.51.100.1"},
		{"client prepends fakes", "10.0.0.2:80", []string{"for=1.2.3.4, for=10.1.1.1, for=198.51.100.1;by=10.0.0.2"}, "198.51.100.1"},
		{"chain over lines", "10.0.0.2:80", []string{"for=1.2.3.4, for=198.51.100.1", "for=10.0.0.5;proto=http"}, "198.51.100.1"},
		{"all trusted", "10.0.0.2:80", []string{"for=10.0.0.9, for=10.0.0.5"}, "10.0.0.9"},
		{"unknown", "10.0.0.2:80", []string{"for=1.2.3.4, for=unknown"}, "10.0.0.2"},
		{"obfuscated behind a trusted hop", "10.0.0.2:80", []string{"for=_hidden, for=10.0.0.5"}, "10.0.0.5"},
		{"element without for", "10.0.0.2:80", []string{"for=1.2.3.4, proto=https"}, "10.0.0.2"},
		{"quoted comma stays in the element", "10.0.0.2:80", []string{`for=1.2.3.4, for=198.51.100.1;ext="a,b;c"`}, "198.51.100.1"},
		{"quoted comma is not an element", "10.0.0.2:80", []string{`for="1.2.3.4,198.51.100.1"`}, "10.0.0.2"},
		{"unterminated quote", "10.0.0.2:80", []string{`for="198.51.100.1`}, "10.0.0.2"},
		{"escaped quote", "10.0.0.2:80", []string{`for="198.51.100.1";x="a\"b"`}, "198.51.100.1"},
	}
	key := ByForwarded(proxies...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := key(request(c.remote, "Forwarded", c.fwd...))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestByForwardedIgnoresXFF(t *testing.T) {
	r := request("10.0.0.2:80", "X-Forwarded-For", "198.51.100.1")
	got, err := ByForwarded(proxies...)(r)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.2", got)
}

func TestByHeader(t *testing.T) {
	key := ByHeader("x-api-key")
	got, err := key(request("203.0.113.7:1", "X-Api-Key", "k-123"))
	require.NoError(t, err)
	assert.Equal(t, "k-123", got)
	got, err = key(request("203.0.113.7:1", "Other", "x"))
	require.NoError(t, err)
	assert.Equal(t, "", got)
}

func FuzzByForwarded(f *testing.F) {
	f.Add(`for="[2001:db8::1]:80";proto=https, for=10.0.0.5`)
	f.Add(`for="\`)
	f.Add(`;;,,="`)
	key := ByForwarded(proxies...)
	f.Fuzz(func(t *testing.T, v string) {
		r := request("10.0.0.2:80", "Forwarded")
		r.Header["Forwarded"] = []string{v}
		got, err := key(r)
		require.NoError(t, err)
		_, err = netip.ParseAddr(got)
		require.NoError(t, err)
	})
}
