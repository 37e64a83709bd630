package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// TextTable is the media type of a table sent or fetched as plain text
// (POST /v1/devices and .../load with this Content-Type; GET .../table
// with ?format=text): a big table then never travels inside a JSON string.
const TextTable = "text/plain"

// Client talks to the daemon's control socket.
type Client struct {
	socket string
	http   *http.Client
}

// New is a client of the daemon listening on the UNIX socket path.
func New(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
		Timeout:       DefaultTimeout,
		CheckRedirect: refuseRedirect,
	}}
}

// refuseRedirect keeps a redirect as the answer: the daemon never sends
// one on purpose, and following it would turn a DELETE or POST into a
// GET of another path that answers 200, a verb that did nothing exiting 0.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// AnswerError is the daemon's answer other than 200 OK: its message, and
// the HTTP status, which tells a device that is not there (404) from a
// verb that failed.
type AnswerError struct {
	Status int
	Msg    string
}

func (e *AnswerError) Error() string { return e.Msg }

// NoSuchDevice reports whether err is the daemon's answer that the device
// named is not there (any more).
func NoSuchDevice(err error) bool {
	var a *AnswerError
	return errors.As(err, &a) && a.Status == http.StatusNotFound
}

// DefaultTimeout bounds a request of a client from New: a verb that never
// returns (a daemon wedged on a hung filesystem) must end some time.
const DefaultTimeout = 10 * time.Minute

// Covering is the client with its bound raised to cover a verb that may
// wait d itself (suspend --timeout 15m), with a minute for the answer: the
// daemon cancels a verb whose client hung up, so a shorter bound would cut
// off the wait it was asked for.
func (c *Client) Covering(d time.Duration) *Client {
	if d+time.Minute <= c.http.Timeout {
		return c
	}
	return c.WithTimeout(d + time.Minute)
}

// Timeout is the client's bound on a request.
func (c *Client) Timeout() time.Duration { return c.http.Timeout }

// WithTimeout is the client with every request bounded by d (shell
// completion must not hang on a stuck daemon).
func (c *Client) WithTimeout(d time.Duration) *Client {
	h := *c.http
	h.Timeout = d
	return &Client{socket: c.socket, http: &h}
}

// Call does one request; out, if not nil, receives the JSON reply. An
// answer other than 200 OK is returned as the error the daemon gave.
func (c *Client) Call(method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.CallBody(method, path, query, "application/json", body, out)
}

// CallBody is Call with a body of the given media type, sent as it is
// (a TextTable).
func (c *Client) CallBody(method, path string, query url.Values, contentType string, body io.Reader, out any) error {
	rc, err := c.Open(method, path, query, contentType, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	return json.NewDecoder(rc).Decode(out)
}

// Open does one request and returns the reply's body to be read as it
// comes (a streamed table or status); the caller closes it. An answer
// other than 200 OK is returned as the error the daemon gave.
func (c *Client) Open(method, path string, query url.Values, contentType string, body io.Reader) (io.ReadCloser, error) {
	u := "http://gdm" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return nil, fmt.Errorf("cannot reach the daemon at %s (is `gdm serve` running? set --control or GDM_CONTROL): %v", c.socket, ne.Err)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, &AnswerError{Status: resp.StatusCode, Msg: e.Error}
		}
		return nil, &AnswerError{Status: resp.StatusCode, Msg: "daemon answered " + resp.Status}
	}
	return resp.Body, nil
}
