package targets

import (
	"errors"
	"strings"
	"testing"
)

// flakeyLine splits a flakey line's args, with /d standing for the device.
func flakeyLine(line string) []string { return strings.Fields(line) }

func TestFlakeyCheckRefuses(t *testing.T) {
	cases := []struct {
		line string
		err  error
		says string // part of the message, naming what is wrong
	}{
		{"/d 0 1", ErrArgCount, "at least 4"},
		{"/d x 1 1", ErrNotNumber, "offset"},
		{"/d -1 1 1", ErrNegative, "offset"},
		{"/d 18446744073709551615 1 1", ErrOverflow, "offset+length"},
		{"/d 0 4294967296 1", ErrOverflow, "up interval"},
		{"/d 0 1 abc", ErrNotNumber, "down interval"},
		{"/d 0 1 +1", ErrNotNumber, "down interval"},
		{"/d 0 0 0", ErrFlakeyInterval, "is zero"},
		{"/d 0 1 4294967295", ErrFlakeyInterval, "is zero"}, // 32-bit sum wraps to 0, as in dm
		{"/d 0 2 4294967295", ErrFlakeyInterval, "overflow"},
		{"/d 0 1 1 x", ErrNotNumber, "number of feature args"},
		{"/d 0 1 1 12 a b c d e f g h i j k l", ErrOverflow, "number of feature args"},
		{"/d 0 1 1 2 drop_writes", ErrArgCount, "2 feature args announced, 1 given"},
		{"/d 0 1 1 1 bogus", ErrFlakeyFeature, `unrecognised flakey feature "bogus"`},
		{"/d 0 1 1 2 drop_writes DROP_WRITES", ErrFlakeyFeature, "drop_writes duplicated"},
		{"/d 0 1 1 2 error_reads error_reads", ErrFlakeyFeature, "error_reads duplicated"},
		{"/d 0 1 1 2 error_writes error_writes", ErrFlakeyFeature, "error_writes duplicated"},
		{"/d 0 1 1 2 drop_writes error_writes", ErrFlakeyConflict, "error_writes with drop_writes"},
		{"/d 0 1 1 2 error_writes drop_writes", ErrFlakeyConflict, "drop_writes with error_writes"},
		{"/d 0 1 1 4 corrupt_bio_byte 1 r 0 0", ErrFlakeyFeature, "requires 4 parameters"},
		{"/d 0 1 1 5 corrupt_bio_byte 0 r 0 0", ErrFlakeyFeature, "corrupt bio byte 0"},
		{"/d 0 1 1 5 corrupt_bio_byte x r 0 0", ErrNotNumber, "corrupt bio byte"},
		{"/d 0 1 1 5 corrupt_bio_byte 1 x 0 0", ErrFlakeyFeature, "direction"},
		{"/d 0 1 1 5 corrupt_bio_byte 1 r 256 0", ErrOverflow, "(0-255)"},
		{"/d 0 1 1 5 corrupt_bio_byte 1 r 0 4294967296", ErrOverflow, "flags mask"},
		{"/d 0 1 1 10 corrupt_bio_byte 1 r 0 0 corrupt_bio_byte 2 r 0 0", ErrFlakeyFeature, "corrupt_bio_byte duplicated"},
		{"/d 0 1 1 6 drop_writes corrupt_bio_byte 1 w 0 0", ErrFlakeyConflict, "drop_writes"},
		{"/d 0 1 1 6 corrupt_bio_byte 1 w 0 0 error_writes", ErrFlakeyConflict, "error_writes"},
		{"/d 0 1 1 3 drop_writes random_write_corrupt 1", ErrFlakeyConflict, "drop_writes"},
		{"/d 0 1 1 3 error_writes random_write_corrupt 1", ErrFlakeyConflict, "error_writes"},
		{"/d 0 1 1 6 error_reads corrupt_bio_byte 1 r 0 0", ErrFlakeyConflict, "error_reads"},
		{"/d 0 1 1 3 random_read_corrupt 5 error_reads", ErrFlakeyConflict, "error_reads"},
		{"/d 0 1 1 1 random_read_corrupt", ErrFlakeyFeature, "requires a parameter"},
		{"/d 0 1 1 1 random_write_corrupt", ErrFlakeyFeature, "requires a parameter"},
		{"/d 0 1 1 2 random_read_corrupt 1000000001", ErrOverflow, "random corrupt"},
		{"/d 0 1 1 4 random_write_corrupt 1 random_write_corrupt 2", ErrFlakeyFeature, "random_write_corrupt duplicated"},
	}
	for _, c := range cases {
		_, err := checkFlakey(flakeyLine(c.line), 8)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: got %v; want %v saying %q", c.line, err, c.err, c.says)
		}
	}
	if _, err := checkFlakey([]string{"", "0", "1", "1"}, 8); !errors.Is(err, ErrEmptyPath) {
		t.Errorf("empty path: got %v", err)
	}
}

// TestFlakeyCanonical compares the canonical args with what dm's TABLE
// status prints for the same line (less 6.1's trailing space).
func TestFlakeyCanonical(t *testing.T) {
	cases := []struct{ line, want string }{
		{"/d 0 1 1", "/d 0 1 1 0"},
		{"/d 007 01 02", "/d 7 1 2 0"},
		{"/d 8 0 5 0", "/d 8 0 5 0"},
		{"/d 0 1 1 0 words dm ignores", "/d 0 1 1 0"},
		{"/d 0 1 1 1 DROP_WRITES ignored", "/d 0 1 1 1 drop_writes"},
		{"/d 0 1 1 6 corrupt_bio_byte 32 R 1 0 Error_Writes", "/d 0 1 1 6 error_writes corrupt_bio_byte 32 r 1 0"},
		{"/d 0 1 1 2 drop_writes error_reads", "/d 0 1 1 2 error_reads drop_writes"},
		{"/d 0 1 1 2 error_writes error_reads", "/d 0 1 1 2 error_reads error_writes"},
		{"/d 0 1 1 4 random_write_corrupt 100000000 random_read_corrupt 100000000",
			"/d 0 1 1 4 random_read_corrupt 100000000 random_write_corrupt 100000000"},
		{"/d 0 1 1 9 random_write_corrupt 5 corrupt_bio_byte 224 w 0 131072 random_read_corrupt 1000000000",
			"/d 0 1 1 9 corrupt_bio_byte 224 w 0 131072 random_read_corrupt 1000000000 random_write_corrupt 5"},
		// A probability of 0 is no feature: not printed, and it may repeat.
		{"/d 0 1 1 2 random_read_corrupt 0", "/d 0 1 1 0"},
		{"/d 0 1 1 11 random_read_corrupt 0 random_read_corrupt 0 random_read_corrupt 0 random_read_corrupt 0 random_read_corrupt 0 drop_writes",
			"/d 0 1 1 1 drop_writes"},
		{"/d 0 1 1 3 drop_writes random_write_corrupt 0", "/d 0 1 1 1 drop_writes"},
	}
	for _, c := range cases {
		got, err := checkFlakey(flakeyLine(c.line), 8)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if s := strings.Join(got, " "); s != c.want {
			t.Errorf("%q: canonical %q, want %q", c.line, s, c.want)
		}
		// The canonical form is a fixed point: the table rebuilds from it.
		again, err := checkFlakey(got, 8)
		if err != nil || strings.Join(again, " ") != c.want {
			t.Errorf("%q: canonical form does not check to itself: %v %q", c.line, err, again)
		}
	}
}

func TestFlakeyRegisteredAndStatus(t *testing.T) {
	typ, err := Lookup("flakey")
	if err != nil {
		t.Fatal(err)
	}
	p := tempFile(t, 8*SectorSize)
	devs := NewDevSet(false)
	defer devs.Close()
	args, err := typ.Check([]string{p, "0", "1", "1", "1", "drop_writes"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := typ.New(args, 8, devs)
	if err != nil {
		t.Fatal(err)
	}
	// dm-flakey's INFO is empty; TABLE is the canonical args, which the
	// table prints itself.
	if s := tg.Status(StatusInfo); s != "" {
		t.Errorf("INFO status %q, want empty", s)
	}
	if s := tg.Status(StatusTable); s != "" {
		t.Errorf("TABLE status %q, want the canonical args (empty)", s)
	}
	if _, ok := tg.(FaultCounter); !ok {
		t.Error("flakey does not count its faults")
	}
	if _, err := typ.New(args, 9, devs); !errors.Is(err, ErrDeviceTooSmall) {
		t.Errorf("9 sectors over an 8-sector device: got %v", err)
	}
}
