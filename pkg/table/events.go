package table

// A device's event number (dm's event_nr) changes when its live table's
// targets raise an event (a remote leg going down or coming back, a
// snapshot turning invalid, a striped leg's device failing I/O) and when the device is renamed with a live
// table, and at nothing else: as in dm, where only dm_table_event bumps
// it (loads, clears, suspends and resumes do not; measured in the guest's
// 6.1 kernel too). `gdm wait` sleeps until it changes, as dmsetup wait
// sleeps on the kernel's event queue. The waiters share one channel,
// closed at the next change (or when the device closes) and made anew by
// the first waiter after it.

// event counts one event and wakes the waiters.
func (d *Device) event() {
	d.stats.Events.Add(1)
	d.wakeEventWaiters()
}

// wakeEventWaiters closes the waiters' channel, if any.
func (d *Device) wakeEventWaiters() {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	if d.evCh != nil {
		close(d.evCh)
		d.evCh = nil
	}
}

// EventWait returns the event number and a channel that is closed when it
// next changes, or when the device closes. A waiter whose channel closed
// reads the number again: the change may have come before it was read.
func (d *Device) EventWait() (uint64, <-chan struct{}) {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	if d.evCh == nil {
		d.evCh = make(chan struct{})
	}
	return d.stats.Events.Load(), d.evCh
}
