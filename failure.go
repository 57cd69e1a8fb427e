package hammer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrUnavailable is wrapped by errors that mean the cluster could not
	// answer now: a node down or unreachable, a network error, a call that
	// ran out of time, CLUSTERDOWN, TRYAGAIN, LOADING, MASTERDOWN, READONLY
	// during a failover. Such errors are transient; the backend asks the
	// client to reload its slot map when it sees one.
	ErrUnavailable = errors.New("hammer: backend unavailable")

	// ErrMisconfigured is wrapped by errors that retrying cannot fix: a
	// wrong password (WRONGPASS, NOAUTH), a missing ACL permission (NOPERM),
	// a TLS certificate that does not verify.
	ErrMisconfigured = errors.New("hammer: backend misconfigured")
)

// errorClass sorts a Redis error into ErrUnavailable, ErrMisconfigured or
// nil (neither: for example a key of another type, or a closed client).
func errorClass(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		return nil // the caller gave up, or closed the client
	}
	if isConfigError(err) {
		return ErrMisconfigured
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, redis.ErrPoolTimeout) {
		return ErrUnavailable
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return ErrUnavailable
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		switch firstWord(rerr.Error()) {
		case "CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY", "BUSY", "MOVED", "ASK":
			return ErrUnavailable
		}
	}
	return nil
}

func isConfigError(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch firstWord(msg) {
		case "NOPERM", "WRONGPASS", "NOAUTH":
			return true
		}
		// ACL refusals inside a script come back as ERR.
		if strings.Contains(msg, "The user executing the script can't") {
			return true
		}
	}
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
