package hammer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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

func TestErrorTable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	// class, and whether the call provably did not run, and whether it is
	// sent again.
	cases := []struct {
		err    error
		class  error
		notRun bool
		resend bool
	}{
		{refused, ErrUnavailable, true, true},
		{fmt.Errorf("wrapped: %w", refused), ErrUnavailable, true, true},
		{reset, ErrUnavailable, false, false},
		{io.EOF, ErrUnavailable, false, false},
		{io.ErrUnexpectedEOF, ErrUnavailable, false, false},
		{context.DeadlineExceeded, ErrUnavailable, false, false},
		{redis.ErrPoolTimeout, ErrUnavailable, true, false},
		{redis.ErrPoolExhausted, ErrUnavailable, true, false},
		{redisErr("CLUSTERDOWN The cluster is down"), ErrUnavailable, true, true},
		{redisErr("CLUSTERDOWN Hash slot not served"), ErrUnavailable, true, true},
		{redisErr("TRYAGAIN Multiple keys request during rehashing of slot"), ErrUnavailable, true, true},
		{redisErr("LOADING Redis is loading the dataset in memory"), ErrUnavailable, true, true},
		{redisErr("READONLY You can't write against a read only replica."), ErrUnavailable, true, true},
		{redisErr("MASTERDOWN Link with MASTER is down"), ErrUnavailable, true, true},
		{redisErr("MOVED 3999 127.0.0.1:6381"), ErrUnavailable, true, true},
		{redisErr("ASK 3999 127.0.0.1:6381"), ErrUnavailable, true, true},
		{redisErr("NOSCRIPT No matching script. Please use EVAL."), ErrUnavailable, true, true},
		{redisErr("ERR Function not found"), ErrUnavailable, true, true},
		{redisErr("ERR unknown command 'fcall', with args beginning with: 'hammer_0123456789abcdef_hit' '2' "), ErrUnavailable, true, true},
		{redisErr("ERR unknown command `fcall`, with args beginning with: "), ErrUnavailable, true, true},
		{redisErr("ERR unknown command 'hgetx', with args beginning with: "), nil, false, false},
		{redisErr("ERR Error running script (call to f_x): Function not found"), nil, false, false},
		{redisErr("OOM command not allowed when used memory > 'maxmemory'."), ErrUnavailable, true, false},
		{redisErr("ERR max number of clients reached"), ErrUnavailable, true, false},
		{redisErr("NOREPLICAS Not enough good replicas to write."), ErrUnavailable, true, false},
		{redisErr("BUSY Redis is busy running a script."), ErrUnavailable, true, false},
		{redisErr("WRONGPASS invalid username-password pair or user is disabled."), ErrMisconfigured, true, false},
		{redisErr("NOAUTH Authentication required."), ErrMisconfigured, true, false},
		{redisErr("NOPERM this user has no permissions to run the 'evalsha' command"), ErrMisconfigured, true, false},
		{redisErr("ERR Error running script: The user executing the script can't run this command or subcommand"), ErrMisconfigured, false, false},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), ErrMisconfigured, true, false},
		{context.Canceled, nil, false, false},
		{redis.ErrClosed, nil, true, true},
		{redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"), nil, false, false},
		{redisErr("ERR increment or decrement would overflow"), nil, false, false},
		{errors.New("something else"), nil, false, false},
	}
	for _, c := range cases {
		k := kindOf(c.err)
		assert.Equal(t, c.class, k.class, "class of %v", c.err)
		assert.Equal(t, c.class, errorClass(c.err), "class of %v", c.err)
		assert.Equal(t, c.notRun, k.notRun, "not run: %v", c.err)
		assert.Equal(t, c.resend, k.resend, "resend: %v", c.err)
		noFunction := c.err.Error() == "ERR Function not found" || strings.Contains(c.err.Error(), "fcall")
		assert.Equal(t, strings.HasPrefix(c.err.Error(), "NOSCRIPT") || noFunction, k.noScript, "no script: %v", c.err)
		assert.Equal(t, noFunction, k.noFunction, "no function: %v", c.err)
	}
}

func TestWrapAddsClass(t *testing.T) {
	b := &ClusterBackend{cfg: config{name: "c1"}, s: &sender{}}
	err := b.wrap("count hit", "id", outcome{err: redisErr("CLUSTERDOWN The cluster is down")})
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.NotErrorIs(t, err, ErrMaybeCounted)
	assert.EqualError(t, err, `hammer c1: count hit "id": hammer: backend unavailable: CLUSTERDOWN The cluster is down`)
	var rerr redis.Error
	assert.ErrorAs(t, err, &rerr, "the Redis error stays reachable")

	err = b.wrap("get bucket", "id", outcome{err: redisErr("NOPERM no permissions")})
	assert.ErrorIs(t, err, ErrMisconfigured)
	assert.NotErrorIs(t, err, ErrUnavailable)

	err = b.wrap("get bucket", "id", outcome{err: redisErr("WRONGTYPE x")})
	assert.NotErrorIs(t, err, ErrUnavailable)
	assert.NotErrorIs(t, err, ErrMisconfigured)

	// A hit sent whose reply was lost says so.
	err = b.wrap("count hit", "id", outcome{err: io.EOF, ran: true})
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, ErrMaybeCounted)
	assert.ErrorIs(t, err, io.EOF)
	assert.EqualError(t, err, `hammer c1: count hit "id": hammer: backend unavailable: hammer: the hit may have been counted: EOF`)

	err = b.wrap("count hit", "id", outcome{err: context.Canceled, ran: true})
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, ErrMaybeCounted)
	assert.NotErrorIs(t, err, ErrUnavailable)
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
