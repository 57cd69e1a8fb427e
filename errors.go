package hammer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrInvalidArgument is wrapped by every error about an argument of a
	// call: an empty or oversized id, a bad scale, limit, increment or rule.
	// Such errors are returned before any Redis command is sent.
	ErrInvalidArgument = errors.New("hammer: invalid argument")

	// ErrInvalidOptions is wrapped by every error about the Options given to
	// NewClusterBackend.
	ErrInvalidOptions = errors.New("hammer: invalid options")

	// ErrUnavailable is wrapped by errors that mean the cluster could not
	// answer now: a node down or unreachable, a network error, a call that
	// ran out of time, CLUSTERDOWN, TRYAGAIN, LOADING, MASTERDOWN, READONLY
	// during a failover, OOM, NOREPLICAS, too many clients, a client pool
	// with no free connection, a script cache still empty after the calls
	// allowed (NOSCRIPT). Such errors are transient; the backend asks
	// the client to reload its slot map when it sees one.
	ErrUnavailable = errors.New("hammer: backend unavailable")

	// ErrMisconfigured is wrapped by errors that retrying cannot fix: a
	// wrong password (WRONGPASS, NOAUTH), a missing ACL permission (NOPERM),
	// a TLS certificate that does not verify.
	ErrMisconfigured = errors.New("hammer: backend misconfigured")

	// ErrNoRuleBackend is wrapped by the error of Hit, HitN and Peek on a
	// Limiter whose backend does not implement RuleBackend.
	ErrNoRuleBackend = errors.New("hammer: the backend keeps no rules")

	// ErrMaybeCounted is wrapped by the error of a hit that was sent but
	// whose reply never came (a read timeout, a connection lost, a context
	// that ended while the hit was on its way): the node may have run it,
	// so it may have been counted, once. Such a hit is never sent again.
	// An error of a hit that does not wrap ErrMaybeCounted means that the
	// hit was not counted.
	ErrMaybeCounted = errors.New("hammer: the hit may have been counted")
)

// errKind is what the backend needs to know of an error of a Redis call.
// One table, kindOf, answers every question asked of an error: its class
// for callers, and whether the call can be sent again.
type errKind struct {
	// class is ErrUnavailable, ErrMisconfigured or nil (neither: the caller
	// gave up, a closed client, a key of another type).
	class error
	// notRun is set when the error proves that the node did not run the
	// call: the request was refused before it ran, or never left the
	// client. Otherwise the call may have run.
	notRun bool
	// resend is set when the call, not run, is worth sending again at once
	// (a redirect, a missing script, a client closed by a slot-map reload)
	// or after a pause (wait is set: a slot half migrated, a failover).
	resend, wait bool
	// noScript is set when the node lacked the script: it is sent again
	// with the script (NOSCRIPT). noFunction is set with it when the node
	// lacked the library's function (see function.go).
	noScript, noFunction bool
}

var (
	kindRedirect    = errKind{class: ErrUnavailable, notRun: true, resend: true}
	kindNotYet      = errKind{class: ErrUnavailable, notRun: true, resend: true, wait: true}
	kindRefused     = errKind{class: ErrUnavailable, notRun: true}
	kindDenied      = errKind{class: ErrMisconfigured, notRun: true}
	kindMaybeRan    = errKind{class: ErrUnavailable}
	kindUnknown     = errKind{}
	kindNoScript    = errKind{class: ErrUnavailable, notRun: true, resend: true, noScript: true}
	kindNoFunction  = errKind{class: ErrUnavailable, notRun: true, resend: true, noScript: true, noFunction: true}
	kindClosed      = errKind{notRun: true, resend: true}
	kindGaveUp      = errKind{}
	kindScriptError = errKind{class: ErrMisconfigured}
)

// replyKinds classifies the error replies of Redis by their first word.
// Each of them is sent before the command runs: the command did not run.
var replyKinds = map[string]errKind{
	"MOVED":       kindRedirect,
	"ASK":         kindRedirect,
	"NOSCRIPT":    kindNoScript,
	"TRYAGAIN":    kindNotYet, // a multi-key call in a slot half migrated
	"CLUSTERDOWN": kindNotYet,
	"LOADING":     kindNotYet,
	"MASTERDOWN":  kindNotYet,
	"READONLY":    kindNotYet, // a master turned replica: the slot map is stale
	"BUSY":        kindRefused,
	"OOM":         kindRefused,
	"NOREPLICAS":  kindRefused,
	"NOPERM":      kindDenied,
	"WRONGPASS":   kindDenied,
	"NOAUTH":      kindDenied,
}

// kindOf classifies an error of a Redis call.
func kindOf(err error) errKind {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if k, ok := replyKinds[firstWord(msg)]; ok {
			return k
		}
		switch {
		case strings.HasPrefix(msg, "ERR max number of clients reached"):
			return kindRefused
		case msg == "ERR Function not found",
			strings.HasPrefix(msg, "ERR unknown command 'fcall'"),
			strings.HasPrefix(msg, "ERR unknown command `fcall`"):
			// FCALL of a function the node lacks, or of a node that
			// lacks functions: refused before anything ran.
			return kindNoFunction
		case strings.Contains(msg, "The user executing the script can't"):
			// An ACL refusal inside a script, at some command: the commands
			// before it may have run.
			return kindScriptError
		}
		return kindUnknown
	}
	switch {
	case errors.Is(err, context.Canceled):
		return kindGaveUp
	case errors.Is(err, redis.ErrClosed):
		return kindClosed
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return kindRefused // no connection was free: nothing was sent
	case isCertError(err):
		return kindDenied
	case isDialError(err):
		return kindNotYet
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return kindMaybeRan
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return kindMaybeRan
	}
	return kindUnknown
}

// errorClass sorts an error into ErrUnavailable, ErrMisconfigured or nil.
func errorClass(err error) error { return kindOf(err).class }

// isDialError tells whether err is a failure to connect: nothing was sent.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

func isCertError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var authErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	return errors.As(err, &certErr) || errors.As(err, &authErr) ||
		errors.As(err, &hostErr) || errors.As(err, &invalidErr)
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}
