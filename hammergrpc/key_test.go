package hammergrpc_test

import (
	"context"
	"net"
	"testing"

	"github.com/go-hammer/hammer/hammergrpc"
	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/peer"
)

// textAddr is a net.Addr of another type than TCP and UDP.
type textAddr string

func (a textAddr) Network() string { return "text" }
func (a textAddr) String() string  { return string(a) }

func TestByPeerAddresses(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want string // "" for an error
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5000}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5000}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5000}, "2001:db8::1"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5000, Zone: "eth0"}, "fe80::1"},
		{&net.UDPAddr{IP: net.ParseIP("198.51.100.7"), Port: 443}, "198.51.100.7"},
		{textAddr("203.0.113.9:80"), "203.0.113.9"},
		{textAddr("[2001:db8::2%eth1]:80"), "2001:db8::2"},
		{textAddr("203.0.113.10"), "203.0.113.10"},
		{&net.TCPAddr{}, ""}, // no IP
		{&net.UnixAddr{Name: "/run/app.sock", Net: "unix"}, ""},
		{textAddr("bufconn"), ""},
		{nil, ""},
	}
	key := hammergrpc.ByPeer()
	for _, tc := range cases {
		k, err := key(peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr}), "/s/m")
		assert.Equal(t, tc.want, k, "%v", tc.addr)
		if tc.want == "" {
			assert.Error(t, err, "%v", tc.addr)
		} else {
			assert.NoError(t, err, "%v", tc.addr)
		}
	}
	_, err := key(context.Background(), "/s/m")
	assert.Error(t, err, "no peer")
}

func TestByMethodKey(t *testing.T) {
	k, err := hammergrpc.ByMethod()(context.Background(), "/pkg.Svc/Do")
	assert.NoError(t, err)
	assert.Equal(t, "/pkg.Svc/Do", k)
}
