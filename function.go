package hammer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis functions: where every master takes them (Redis 7 and later), the
// scripts of hits, rule calls and batches are called with FCALL, as the
// functions of one library, rather than with EVALSHA. A library is loaded
// once: its definitions (closures, scratch tables, parsed rules) stay
// between calls, where EVALSHA runs a script's whole body again at every
// call. An FCALL runs the same Lua as the script it stands for, so both
// forms decide and write alike, and a call may go in either.
//
// The library is loaded on every master (FUNCTION LOAD) once the first
// script call has got a reply (so a client that cannot log in sends no
// more than its calls), before that call returns, and again, at most once
// per libraryRetry, after a call finds it missing; calls go with EVALSHA
// until it is loaded. A node that lacks the function refuses the
// call before running it ("Function not found", as NOSCRIPT for a
// script): the call is sent again with its script's source (EVAL), or, on
// a master's own client, after loading the library in the same pipeline.
// Functions are off for the sender (calls go with EVALSHA, as before)
// when a master refuses the load for good: Redis before 7, miniredis, an
// ACL that forbids FUNCTION, or Options.NoFunctions.
//
// Like the scripts, the library is named by a hash of its source, so
// clients of different versions share a cluster, each calling its own
// functions. Redis keeps a library until FUNCTION DELETE: it is saved in
// RDB and AOF files and replicated.

// library is a function library: its name and its source, for FUNCTION
// LOAD.
type library struct {
	name, src string
}

// libFunc is a script served as a function of the library: the suffix of
// the function's name, the script, its body (the script's source after the
// definitions it shares with the others), and the function's flags.
type libFunc struct {
	suffix string
	script *luaScript
	entry  string
	flags  string // a Lua list of the function's flags
}

// newLibrary returns the library of defs, shared definitions, and funcs,
// each called <name>_<suffix>, and gives each script its function's name.
// name is "hammer_" and 16 hex digits of the SHA1 of the library's source
// with the name left out.
func newLibrary(defs string, funcs ...libFunc) *library {
	const ph = "\x00" // where the name goes
	var sb strings.Builder
	sb.WriteString("#!lua name=" + ph + "\n" + defs)
	for _, f := range funcs {
		sb.WriteString("redis.register_function{function_name = '" + ph + "_" + f.suffix +
			"', flags = " + f.flags + ", callback = function(KEYS, ARGV)\nbegin()\n" + f.entry + "end}\n")
	}
	tmpl := sb.String()
	sum := sha1.Sum([]byte(tmpl))
	name := "hammer_" + hex.EncodeToString(sum[:8])
	for _, f := range funcs {
		f.script.fn = name + "_" + f.suffix
		f.script.fnArg = f.script.fn
	}
	return &library{name: name, src: strings.ReplaceAll(tmpl, ph, name)}
}

// scriptLibrary serves hitSource, ruleSource and batchSource.
var scriptLibrary = newLibrary(preludeLua+indexLua+fixedLua+ruleLua+batchLua,
	libFunc{suffix: "hit", script: hitScript, entry: hitEntry, flags: "{}"},
	libFunc{suffix: "rule", script: ruleScript, entry: ruleEntry, flags: "{}"},
	libFunc{suffix: "batch", script: batchScript, entry: batchEntry, flags: "{'allow-cross-slot-keys'}"},
)

// Whether calls go as FCALL, for a sender.
const (
	fnUnknown int32 = iota
	fnOn
	fnOff
)

// libraryRetry is the least time between two loads of the library on
// every master.
const libraryRetry = time.Second

// functions tells whether s sends calls of the library's scripts with
// FCALL.
func (s *sender) functions() bool { return s.fn.Load() == fnOn }

// loadLibrary loads the library on every master, unless a load started
// less than libraryRetry ago (other callers go on meanwhile, as they
// did), and records whether functions can be used: yes when every master
// has the library, no when a master refused it for good (an unknown
// command, NOPERM, a library it cannot load). A failure to reach a master,
// or an error that passes (a failover, a failed login, ctx's end), leaves
// that as it was.
func (s *sender) loadLibrary(ctx context.Context) {
	now := time.Now().UnixNano()
	next := s.fnNext.Load()
	if now < next || !s.fnNext.CompareAndSwap(next, now+int64(libraryRetry)) {
		return
	}
	if fn, known := libraryLoaded(ctx, s.client); known {
		s.fn.Store(fn)
	}
}

// libraryLoaded loads the library on every master of client, and tells
// whether functions can be used (fnOn or fnOff), when that is known.
func libraryLoaded(ctx context.Context, client redis.UniversalClient) (fn int32, known bool) {
	var err error
	switch c := client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return loadLibraryOn(ctx, m)
		})
	case *redis.Client:
		err = loadLibraryOn(ctx, c)
	default:
		return fnOff, true // no way to reach each master
	}
	var rerr redis.Error
	switch {
	case err == nil:
		return fnOn, true
	case errors.As(err, &rerr) && (kindOf(err).class == nil || strings.HasPrefix(rerr.Error(), "NOPERM")):
		return fnOff, true
	}
	return fnUnknown, false
}

// loadLibraryOn loads the library on one node: FUNCTION LOAD, which a
// node that has it already refuses, as it should.
func loadLibraryOn(ctx context.Context, c *redis.Client) error {
	err := c.Do(ctx, "function", "load", scriptLibrary.src).Err()
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return err
}
