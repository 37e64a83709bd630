package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// notifier speaks systemd's sd_notify protocol (a Type=notify service):
// each state change is one datagram of KEY=VALUE lines sent to the UNIX
// socket named by $NOTIFY_SOCKET. It is one sendto, so no library. Outside
// systemd (no $NOTIFY_SOCKET) every call is a no-op.
//
// With WatchdogSec= in the unit, systemd sets $WATCHDOG_USEC and expects
// WATCHDOG=1 at least that often, or kills and restarts the service. The
// keep-alives come from watchdog, which sends one only after a liveness
// probe of the daemon (its device map's lock, which every verb, scrape and
// handshake takes) comes back: a daemon deadlocked there stops answering
// systemd too.
type notifier struct {
	addr     *net.UnixAddr // nil: not under systemd
	watchdog time.Duration // 0: no watchdog asked for
	stop     chan struct{}
	done     chan struct{}
}

// newNotifier reads the environment systemd sets for the service.
// $WATCHDOG_PID, when set, names the process the watchdog is for: another
// process's (a child started by the service) is not ours to answer.
func newNotifier() *notifier {
	n := &notifier{stop: make(chan struct{}), done: make(chan struct{})}
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return n
	}
	// A name starting with '@' is in the abstract namespace; Go's net
	// package maps it to the leading NUL the kernel wants.
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 63)
	pid := os.Getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// send delivers one notification; it never blocks on a slow reader
// (datagram sockets drop or fail, they do not wait).
func (n *notifier) send(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(state))
	return err
}

// ready says the daemon serves: every device restored, every listener up.
func (n *notifier) ready(devices int) error {
	return n.send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=serving %d devices", os.Getpid(), devices))
}

// startWatchdog sends WATCHDOG=1 every half watchdog interval (systemd's
// advice) for as long as alive returns; a probe that hangs sends nothing
// until it returns.
func (n *notifier) startWatchdog(alive func()) {
	if n.addr == nil || n.watchdog == 0 {
		close(n.done)
		return
	}
	go func() {
		defer close(n.done)
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				alive()
				n.send("WATCHDOG=1")
			}
		}
	}()
}

// stopping says the daemon is shutting down, and ends the keep-alives
// (systemd's stop timeout covers the rest).
func (n *notifier) stopping() {
	select {
	case <-n.stop:
		return // already said
	default:
	}
	close(n.stop)
	<-n.done
	n.send("STOPPING=1\nSTATUS=shutting down")
}
