package httplimit

import (
	"bufio"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-hammer/hammer"
	"github.com/go-hammer/hammer/rlheader"
)

// DefaultDeniedHandler answers 429 Too Many Requests, with
// {"error":"rate limit exceeded","retry_after":N} when the request's Accept
// header prefers application/json, and "rate limit exceeded, retry in N s"
// as plain text otherwise. N is the Retry-After seconds,
// rlheader.RetryAfterSeconds(d).
func DefaultDeniedHandler(w http.ResponseWriter, r *http.Request, d hammer.Decision) {
	n := strconv.FormatInt(rlheader.RetryAfterSeconds(d), 10)
	if prefersJSON(r.Header.Values("Accept")) {
		writeBody(w, http.StatusTooManyRequests, "application/json",
			`{"error":"rate limit exceeded","retry_after":`+n+"}\n")
		return
	}
	writeBody(w, http.StatusTooManyRequests, "text/plain; charset=utf-8",
		"rate limit exceeded, retry in "+n+" s\n")
}

// DefaultErrorHandler answers with the status ErrorStatus gives for err,
// and a short body naming the status only: the error itself, which may hold
// addresses of the backend, is not shown. It is JSON, {"error":"..."}, when
// the request's Accept header prefers application/json, plain text
// otherwise.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	status := ErrorStatus(err)
	var msg string
	switch status {
	case http.StatusBadRequest:
		msg = "rate limit key too long"
	case http.StatusInternalServerError:
		msg = "rate limit check failed"
	default:
		msg = "rate limiter unavailable"
	}
	if prefersJSON(r.Header.Values("Accept")) {
		writeBody(w, status, "application/json", `{"error":"`+msg+`"}`+"\n")
		return
	}
	writeBody(w, status, "text/plain; charset=utf-8", msg+"\n")
}

// deniedWriter is the ResponseWriter given to a DeniedHandler. A body or a
// flush before any status goes out as 429 rather than Go's implicit 200;
// the middleware answers 429 itself when the handler wrote no status.
// Unwrap gives http.ResponseController the writer beneath.
type deniedWriter struct {
	http.ResponseWriter
	wroteHeader bool // a final status was sent, or the connection hijacked
}

// WriteHeader sends code. Informational codes (1xx but 101) are not a
// final status.
func (w *deniedWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sends 429 first when no status was sent.
func (w *deniedWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends 429 first when no status was sent, then flushes, when the
// writer beneath can.
func (w *deniedWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hijacks the connection, when the writer beneath can; the
// middleware then writes nothing more.
func (w *deniedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.wroteHeader = true
	}
	return c, rw, err
}

// Unwrap returns the writer beneath, for http.ResponseController.
func (w *deniedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeBody(w http.ResponseWriter, status int, contentType, body string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// acceptMatch is how a media range of an Accept header matched a type: its
// q, how specific it was (2 exact, 1 type/*, 0 */*) and its position.
type acceptMatch struct {
	q        float64
	specific int
	pos      int
	ok       bool
}

// better reports whether m should decide over o: a more specific range
// sets a type's q (RFC 9110, 12.5.1).
func (m acceptMatch) better(o acceptMatch) bool {
	return !o.ok || m.specific > o.specific
}

// prefersJSON reports whether an Accept header ranks application/json above
// text/plain: by q, then by how specifically each was named, then by which
// came first. A missing or unreadable header prefers text.
func prefersJSON(accept []string) bool {
	var js, txt acceptMatch
	pos := 0
	for _, line := range accept {
		for _, part := range strings.Split(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			pos++
			q := 1.0
			if s, ok := params["q"]; ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
					q = v
				}
			}
			typ, sub, _ := strings.Cut(mt, "/")
			if m, ok := match(typ, sub, "application", "json", q, pos); ok && m.better(js) {
				js = m
			}
			if m, ok := match(typ, sub, "text", "plain", q, pos); ok && m.better(txt) {
				txt = m
			}
		}
	}
	switch {
	case !js.ok || js.q == 0:
		return false
	case !txt.ok || js.q != txt.q:
		return !txt.ok || js.q > txt.q
	case js.specific != txt.specific:
		return js.specific > txt.specific
	default:
		return js.pos < txt.pos
	}
}

// match matches the media range typ/sub against wantTyp/wantSub.
func match(typ, sub, wantTyp, wantSub string, q float64, pos int) (acceptMatch, bool) {
	switch {
	case typ == wantTyp && sub == wantSub:
		return acceptMatch{q, 2, pos, true}, true
	case typ == wantTyp && sub == "*":
		return acceptMatch{q, 1, pos, true}, true
	case typ == "*" && sub == "*":
		return acceptMatch{q, 0, pos, true}, true
	}
	return acceptMatch{}, false
}
