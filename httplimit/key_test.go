package httplimit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
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
		{"unterminated quote left of the proxy's element", "10.0.0.2:80", []string{`for="6.6.6.6, for=198.51.100.1`}, "198.51.100.1"},
		{"unterminated quote left of a trusted hop", "10.0.0.2:80", []string{`for="6.6.6.6, for=10.0.0.5;proto=https`}, "10.0.0.5"},
		{"unterminated quote on an earlier line", "10.0.0.2:80", []string{`for="6.6.6.6`, "for=198.51.100.1"}, "198.51.100.1"},
		{"quote closed by the client's own element", "10.0.0.2:80", []string{`x="a, for=6.6.6.6;y=", for=198.51.100.1`}, "198.51.100.1"},
		{"escaped closing quote", "10.0.0.2:80", []string{`for="198.51.100.1\"`}, "10.0.0.2"},
		{"escaped backslash before the closing quote", "10.0.0.2:80", []string{`for=198.51.100.1;x="a\\"`}, "198.51.100.1"},
		{"escapes in the address", "10.0.0.2:80", []string{`for="\198.51.100.\1"`}, "198.51.100.1"},
		{"stray quote in a token", "10.0.0.2:80", []string{`for=198.51.100.1"`}, "10.0.0.2"},
		{"two for= in one element", "10.0.0.2:80", []string{"for=6.6.6.6;for=198.51.100.1"}, "10.0.0.2"},
		{"spaces around delimiters", "10.0.0.2:80", []string{"for=1.2.3.4 , for = 198.51.100.1 ; proto=https "}, "198.51.100.1"},
		{"empty pairs", "10.0.0.2:80", []string{"for=1.2.3.4, ;for=198.51.100.1;;"}, "198.51.100.1"},
		{"unquoted bracketed IPv6", "10.0.0.2:80", []string{"for=[2001:db8::1]:4711"}, "2001:db8::1"},
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

// chain returns n X-Forwarded-For entries 10.0.0.1 to 10.0.0.n, or
// Forwarded elements when prefix is "for=".
func chain(prefix string, n int) string {
	hops := make([]string, n)
	for i := range hops {
		hops[i] = fmt.Sprintf("%s10.0.0.%d", prefix, i+1)
	}
	return strings.Join(hops, ", ")
}

func TestMaxHops(t *testing.T) {
	cases := []struct {
		name   string
		key    KeyFunc
		header string
		value  string
		want   string
	}{
		// Every entry is trusted: the leftmost one read is the client.
		{"ByIP at the cap", ByIP(proxies...), "X-Forwarded-For", chain("", MaxHops), "10.0.0.1"},
		{"ByIP past the cap", ByIP(proxies...), "X-Forwarded-For", chain("", MaxHops+8), "10.0.0.9"},
		{"ByIP, client past the cap", ByIP(proxies...), "X-Forwarded-For", "198.51.100.1, " + chain("", MaxHops), "10.0.0.1"},
		{"ByForwarded at the cap", ByForwarded(proxies...), "Forwarded", chain("for=", MaxHops), "10.0.0.1"},
		{"ByForwarded past the cap", ByForwarded(proxies...), "Forwarded", chain("for=", MaxHops+8), "10.0.0.9"},
		{"ByForwarded, client past the cap", ByForwarded(proxies...), "Forwarded", "for=198.51.100.1, " + chain("for=", MaxHops), "10.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.key(request("10.0.0.250:80", c.header, c.value))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestMaxHopsOverLines(t *testing.T) {
	lines := strings.Split(chain("", MaxHops+8), ", ")
	got, err := ByIP(proxies...)(request("10.0.0.250:80", "X-Forwarded-For", lines...))
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.9", got)
}

// longHeaders are forwarding headers of about size bytes, as a client or a
// chain of trusted proxies might send them, keyed behind a trusted proxy.
var longHeaders = []struct {
	name   string
	key    KeyFunc
	header string
	lines  func(size int) []string
}{
	{"ByIP/commas", ByIP(proxies...), "X-Forwarded-For", func(n int) []string {
		return []string{strings.Repeat(",", n)}
	}},
	{"ByIP/spoofed", ByIP(proxies...), "X-Forwarded-For", func(n int) []string {
		return []string{strings.Repeat("6.6.6.6, ", n/9) + "198.51.100.1"}
	}},
	{"ByIP/trusted", ByIP(proxies...), "X-Forwarded-For", func(n int) []string {
		return []string{strings.Repeat("10.0.0.1, ", n/10) + "10.0.0.3"}
	}},
	{"ByIP/spaces", ByIP(proxies...), "X-Forwarded-For", func(n int) []string {
		return []string{strings.Repeat(" ", n) + "198.51.100.1"}
	}},
	{"ByIP/lines", ByIP(proxies...), "X-Forwarded-For", func(n int) []string {
		return strings.Split(strings.Repeat("10.0.0.1,", n/9)+"10.0.0.3", ",")
	}},
	{"ByForwarded/commas", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return []string{strings.Repeat(",", n)}
	}},
	{"ByForwarded/semicolons", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return []string{strings.Repeat(";", n) + "for=198.51.100.1"}
	}},
	{"ByForwarded/unterminated", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return []string{strings.Repeat(`for="6.6.6.6, `, n/14) + "for=198.51.100.1"}
	}},
	{"ByForwarded/quoted", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return []string{`x="` + strings.Repeat(`a\"\\,`, n/6) + `", for=10.0.0.5`}
	}},
	{"ByForwarded/trusted", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return []string{strings.Repeat("for=10.0.0.1;proto=https, ", n/26) + "for=10.0.0.3"}
	}},
	{"ByForwarded/lines", ByForwarded(proxies...), "Forwarded", func(n int) []string {
		return strings.Split(strings.Repeat("for=10.0.0.1,", n/13)+"for=10.0.0.3", ",")
	}},
}

// allocated returns the allocations and the bytes allocated by one call of f,
// averaged over runs calls.
func allocated(runs int, f func()) (allocs float64, bytes uint64) {
	allocs = testing.AllocsPerRun(runs, f)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return allocs, (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestLongHeaderAllocs checks that the cost of a key does not grow with the
// length of the forwarding headers: a client controls their length.
func TestLongHeaderAllocs(t *testing.T) {
	for _, h := range longHeaders {
		t.Run(h.name, func(t *testing.T) {
			var first float64
			for i, size := range []int{1 << 10, 100 << 10, 1 << 20} {
				r := request("10.0.0.2:80", h.header, h.lines(size)...)
				allocs, bytes := allocated(10, func() {
					if _, err := h.key(r); err != nil {
						t.Fatal(err)
					}
				})
				t.Logf("%d bytes: %v allocs, %d B", size, allocs, bytes)
				if i == 0 {
					first = allocs
				}
				assert.Equal(t, first, allocs, "allocations with a %d-byte header", size)
				assert.LessOrEqual(t, allocs, 4.0, "allocations with a %d-byte header", size)
				assert.LessOrEqual(t, bytes, uint64(1024), "bytes allocated with a %d-byte header", size)
			}
		})
	}
}

func BenchmarkLongHeader(b *testing.B) {
	for _, h := range longHeaders {
		for _, size := range []int{1 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKB", h.name, size>>10), func(b *testing.B) {
				r := request("10.0.0.2:80", h.header, h.lines(size)...)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h.key(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
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
	f.Add(`for="6.6.6.6`)
	f.Add(`x="a\\", for="[2001:db8::1]"`)
	key := ByForwarded(proxies...)
	f.Fuzz(func(t *testing.T, v string) {
		r := request("10.0.0.2:80", "Forwarded")
		r.Header["Forwarded"] = []string{v}
		got, err := key(r)
		require.NoError(t, err)
		_, err = netip.ParseAddr(got)
		require.NoError(t, err)

		// Nothing a client writes changes how the element that a trusted
		// proxy appends to its line reads.
		r.Header["Forwarded"] = []string{v + ", for=198.51.100.1"}
		got, err = key(r)
		require.NoError(t, err)
		require.Equal(t, "198.51.100.1", got)
	})
}
