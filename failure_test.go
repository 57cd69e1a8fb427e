package hammer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

// redisErr is a server error reply, as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

var _ redis.Error = redisErr("")

func TestErrorClass(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		err  error
		want error
	}{
		{refused, ErrUnavailable},
		{fmt.Errorf("wrapped: %w", refused), ErrUnavailable},
		{io.EOF, ErrUnavailable},
		{io.ErrUnexpectedEOF, ErrUnavailable},
		{context.DeadlineExceeded, ErrUnavailable},
		{redis.ErrPoolTimeout, ErrUnavailable},
		{redisErr("CLUSTERDOWN The cluster is down"), ErrUnavailable},
		{redisErr("CLUSTERDOWN Hash slot not served"), ErrUnavailable},
		{redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), ErrUnavailable},
		{redisErr("LOADING Redis is loading the dataset in memory"), ErrUnavailable},
		{redisErr("READONLY You can't write against a read only replica."), ErrUnavailable},
		{redisErr("MASTERDOWN Link with MASTER is down"), ErrUnavailable},
		{redisErr("MOVED 3999 127.0.0.1:6381"), ErrUnavailable},
		{redisErr("WRONGPASS invalid username-password pair or user is disabled."), ErrMisconfigured},
		{redisErr("NOAUTH Authentication required."), ErrMisconfigured},
		{redisErr("NOPERM this user has no permissions to run the 'evalsha' command"), ErrMisconfigured},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), ErrMisconfigured},
		{context.Canceled, nil},
		{redis.ErrClosed, nil},
		{redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"), nil},
		{redisErr("ERR increment or decrement would overflow"), nil},
		{errors.New("something else"), nil},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, errorClass(c.err), "%v", c.err)
	}
}

func TestWrapAddsClass(t *testing.T) {
	b := &ClusterBackend{cfg: config{name: "c1"}}
	err := b.wrap("count hit", "id", redisErr("CLUSTERDOWN The cluster is down"))
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.EqualError(t, err, `hammer c1: count hit "id": hammer: backend unavailable: CLUSTERDOWN The cluster is down`)
	var rerr redis.Error
	assert.ErrorAs(t, err, &rerr, "the Redis error stays reachable")

	err = b.wrap("get bucket", "id", redisErr("NOPERM no permissions"))
	assert.ErrorIs(t, err, ErrMisconfigured)
	assert.NotErrorIs(t, err, ErrUnavailable)

	err = b.wrap("get bucket", "id", redisErr("WRONGTYPE x"))
	assert.NotErrorIs(t, err, ErrUnavailable)
	assert.NotErrorIs(t, err, ErrMisconfigured)
}

func TestClientDefaults(t *testing.T) {
	co := (&Options{InitServers: []string{"a:1"}}).clusterOptions()
	assert.Equal(t, DefaultDialTimeout, co.DialTimeout)
	assert.Equal(t, DefaultReadTimeout, co.ReadTimeout)
	assert.Equal(t, DefaultWriteTimeout, co.WriteTimeout)
	assert.Equal(t, DefaultDialerRetries, co.DialerRetries)
	assert.True(t, co.ContextTimeoutEnabled)

	ro := &redis.ClusterOptions{ReadTimeout: 2 * time.Second, DialTimeout: -1}
	co = (&Options{InitServers: []string{"a:1"}, RedisOptions: ro}).clusterOptions()
	assert.Equal(t, 2*time.Second, co.ReadTimeout, "a set field wins")
	assert.Equal(t, time.Duration(-1), co.DialTimeout)
	assert.Equal(t, DefaultWriteTimeout, co.WriteTimeout)

	co = (&Options{InitServers: []string{"a:1"}, RedisOptions: ro, KeepRedisDefaults: true}).clusterOptions()
	assert.Equal(t, time.Duration(0), co.WriteTimeout)
	assert.False(t, co.ContextTimeoutEnabled)
}
