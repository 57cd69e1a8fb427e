package hammer

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// The one path every script call takes to Redis, hits alone or in batches:
//
//	call → send → (pipeline on a master, or the routing client) → settle
//
// Every script call is marked so that go-redis never sends it twice: after a
// read timeout or a lost connection, go-redis would send it again on its
// own, and a hit would count twice. send sends again itself, and only what
// the error table (kindOf) proves did not run: MOVED, ASK, TRYAGAIN,
// NOSCRIPT, a missing function, READONLY, CLUSTERDOWN, a refused dial, a
// node client closed by a slot-map reload. It tries at most maxRounds
// times, whatever the caller's context.

// call is one script call: what to send, and once sent, how it ended.
type call struct {
	script *luaScript
	keys   []string
	args   []any
	// cmd, when set, is the whole command, built at once (see batchCmd);
	// keys and args are then unused.
	cmd []any

	val any   // the reply, when err is nil
	err error // the last error, when the call failed
	// ran is set with err when the call may have run: it was sent, and
	// its reply never came.
	ran bool

	eval bool // send the whole script (EVAL): the node lacked it

	// group names the call's key set, for a hit's or a rule call's script:
	// calls of one batch with the same group can be merged (see sendMany).
	// "" for other calls.
	group string

	// queued is set while the call waits in a coalescer's queue.
	queued

	// Room for a hit's keys and arguments, so that a hit is one
	// allocation (see newHitCall).
	keyBuf [2]string
	argBuf [3]any
	now    intArg // a hit's or a rule call's now, in argBuf by pointer
	tok    string // the token of a call of one rule, in argBuf by pointer
}

// newHitCall returns the call of hitSource for a hit of bucket (listed in
// index) at now, of increment, with the bucket TTL ttl.
func newHitCall(bucket, index string, now, increment int64, ttl any) *call {
	cl := &call{script: hitScript, group: bucket}
	cl.keyBuf = [2]string{bucket, index}
	cl.now.n = now
	cl.argBuf = [3]any{&cl.now, increment, ttl} // increment: mostly 1, boxed for free
	cl.keys, cl.args = cl.keyBuf[:], cl.argBuf[:]
	return cl
}

// Arguments that go to go-redis by pointer. A string or an int64 put in a
// command's []any is boxed, an allocation per argument (an int64 below
// 256 excepted); a pointer is not. go-redis writes them through
// MarshalBinary, and logs and traces that print a command print them
// through String.

// strArg is a string argument: (*strArg)(&s) of a string s that stays as
// it is while the command is written.
type strArg string

// MarshalBinary returns the string's bytes, not a copy: go-redis only
// copies them into its buffer.
func (a *strArg) MarshalBinary() ([]byte, error) {
	return unsafe.Slice(unsafe.StringData(string(*a)), len(*a)), nil
}

func (a *strArg) String() string { return string(*a) }

// intArg is an integer argument, with room for its digits.
type intArg struct {
	n   int64
	buf [20]byte
}

// MarshalBinary writes the number's digits in a's room: a command that
// holds a is written by one goroutine at a time.
func (a *intArg) MarshalBinary() ([]byte, error) {
	return strconv.AppendInt(a.buf[:0], a.n, 10), nil
}

func (a *intArg) String() string { return strconv.FormatInt(a.n, 10) }

// noRetry marks a command that go-redis must never send again: it may
// have run, and a second run would count again.
type noRetry struct{ *redis.Cmd }

func (noRetry) NoRetry() bool { return true }

const (
	// maxRounds bounds the sends of one call: the first, and the resends
	// of what did not run.
	maxRounds = 6
	// firstPause is the pause before the first resend that waits (a slot
	// half migrated, a failover, a refused dial); it doubles each round.
	firstPause = 10 * time.Millisecond
)

// conn is where a round is sent: a master's client, or the routing client.
type conn interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
}

// sender sends script calls and settles each exactly once.
type sender struct {
	client redis.UniversalClient // routes each key to its master
	reload reloader
	batch  atomic.Int32 // batchUnknown, batchOn or batchOff (see sendMany)
	fn     atomic.Int32 // fnUnknown, fnOn or fnOff (see functions)
	fnNext atomic.Int64 // unix ns before which the library is not loaded again

	// Counts for tests: batch script calls sent, and the calls of their
	// units that came back not run and went on the ordinary path.
	batchesSent, unitsResent atomic.Int64
}

// send sends calls on c, as one pipeline (or one command, for one call),
// and settles every call: its reply, or its error. c is a master's client,
// or the routing client. Calls that did not run are sent again through
// the routing client, which follows redirects, at most maxRounds times in
// all: at once after a redirect, a missing script or a closed client,
// after a growing pause otherwise. A call whose context has ended is not
// sent again.
func (s *sender) send(ctx context.Context, c conn, calls []*call) {
	pending := calls
	var next []*call
	var load *luaScript // load this script first, in the same pipeline
	pauseFor := firstPause
	for round := 1; ; round++ {
		if err := ctx.Err(); err != nil {
			for _, cl := range pending {
				cl.err = err // not sent this round: not run
			}
			return
		}
		s.round(ctx, c, load, pending)
		next = next[:0]
		wait := false
		for _, cl := range pending {
			if cl.err == nil {
				continue
			}
			k := kindOf(cl.err)
			if k.class == ErrUnavailable && !k.noScript {
				s.reload.trigger()
			}
			cl.ran = !k.notRun
			if k.noFunction {
				// A master lacks the library (a new master, FUNCTION
				// FLUSH): load it on every master again. The call is
				// sent again with its script, or, on a master's own
				// client, after the library.
				s.loadLibrary(ctx)
			}
			if k.resend && round < maxRounds {
				cl.eval = cl.eval || k.noScript
				wait = wait || k.wait
				next = append(next, cl)
			}
		}
		if len(next) == 0 {
			return
		}
		if wait {
			if !pause(ctx, pauseFor) {
				for _, cl := range next {
					cl.err = fmt.Errorf("%w (before that: %v)", ctx.Err(), cl.err)
				}
				return
			}
			pauseFor *= 2
		}
		load = nil
		if isNode(c) && allEval(next) {
			// The master lost its script cache (SCRIPT FLUSH, a restart)
			// or the library: load the script, or the library, once, and
			// send the calls again by SHA or name, all in one pipeline.
			load = next[0].script
			fc := s.functions()
			for _, cl := range next {
				cl.eval = !loads(fc, load, cl.script)
			}
		} else {
			c = s.client
		}
		pending, next = next, pending[:0]
	}
}

// isNode tells whether c is a master's own client, rather than the
// routing client.
func isNode(c conn) bool {
	_, node := c.(*redis.Client)
	return node
}

// loads tells whether loading load (SCRIPT LOAD, or FUNCTION LOAD of the
// library when fc is set and load is in it) lets sc be called without its
// source.
func loads(fc bool, load, sc *luaScript) bool {
	return sc == load || fc && load.fn != "" && sc.fn != ""
}

// round sends calls on c once, after loading the script load (or its
// library) unless it is nil, and records each call's reply or error.
func (s *sender) round(ctx context.Context, c conn, load *luaScript, calls []*call) {
	fc := s.functions()
	cmds := make([]*redis.Cmd, len(calls))
	for i, cl := range calls {
		cmds[i] = redis.NewCmd(ctx, cl.cmdArgs(fc)...)
	}
	if len(cmds) == 1 && load == nil {
		_ = c.Process(ctx, noRetry{cmds[0]})
	} else {
		pipe := c.Pipeline()
		switch {
		case load == nil:
		case fc && load.fn != "":
			_ = pipe.Process(ctx, redis.NewCmd(ctx, "function", "load", scriptLibrary.src))
		default:
			_ = pipe.Process(ctx, redis.NewCmd(ctx, "script", "load", load.src))
		}
		for _, cmd := range cmds {
			_ = pipe.Process(ctx, noRetry{cmd})
		}
		_, _ = pipe.Exec(ctx) // errors are per command
	}
	replied := false
	for i, cl := range calls {
		cl.val, cl.err = cmds[i].Result()
		replied = replied || cl.err == nil
	}
	if replied && s.fn.Load() == fnUnknown {
		s.loadLibrary(ctx) // the nodes answer: find out whether they take functions
	}
}

// cmdArgs returns the command of the call: EVAL when the node lacked its
// script or function, else FCALL where fc is set and a function serves the
// script, else EVALSHA.
func (cl *call) cmdArgs(fc bool) []any {
	verb, name := "evalsha", cl.script.shaArg
	switch {
	case cl.eval:
		verb, name = "eval", cl.script.srcArg
	case fc && cl.script.fn != "":
		verb, name = "fcall", cl.script.fnArg
	}
	if cl.cmd != nil {
		cl.cmd[0], cl.cmd[1] = verb, name
		return cl.cmd
	}
	args := make([]any, 0, 3+len(cl.keys)+len(cl.args))
	args = append(args, verb, name, len(cl.keys))
	for _, k := range cl.keys {
		args = append(args, k)
	}
	return append(args, cl.args...)
}

// allEval tells whether every call lacked its script.
func allEval(calls []*call) bool {
	for _, cl := range calls {
		if !cl.eval {
			return false
		}
	}
	return true
}

// pause waits d, and reports false when ctx ends first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reloadInterval is the least time between two slot-map reloads that
// errors trigger.
const reloadInterval = 200 * time.Millisecond

// reloader asks a cluster client to reload its slot map after errors that
// may mean the map is stale, at most once per reloadInterval. go-redis
// reloads on MOVED and on a timer only; after a master dies it would keep
// sending that master's slots to the dead address until the timer fires.
type reloader struct {
	cc   *redis.ClusterClient // nil: nothing to reload (standalone)
	last atomic.Int64         // unix ns of the latest reload
}

func (r *reloader) trigger() {
	if r.cc == nil {
		return
	}
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(reloadInterval) || !r.last.CompareAndSwap(last, now) {
		return
	}
	// ReloadState only schedules the reload: it never blocks the caller.
	r.cc.ReloadState(context.Background())
}

// outcome is how a call ended, as its caller sees it.
type outcome struct {
	val any
	err error
	ran bool // with err: the call may have run
}

func (cl *call) outcome() outcome { return outcome{val: cl.val, err: cl.err, ran: cl.ran} }
