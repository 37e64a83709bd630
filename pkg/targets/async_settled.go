package targets

import "errors"

// settledErr is an asynchronous request's error already in the device's
// words and counted, which the target's AsyncErr passes on as it is: the
// part of the request that failed was done the blocking way (a crypt
// write the device would not take then, a striped leg's pieces redone one
// by one), whose errors say it all.
type settledErr struct{ err error }

func (e settledErr) Error() string { return e.err.Error() }
func (e settledErr) Unwrap() error { return e.err }

// settle marks err, if any, as settled.
func settle(err error) error {
	if err == nil {
		return nil
	}
	return settledErr{err}
}

// settled is the error inside err if err was settled, and reports
// whether it was.
func settled(err error) (error, bool) {
	var s settledErr
	if errors.As(err, &s) {
		return s.err, true
	}
	return err, false
}
