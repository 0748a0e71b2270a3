package exportd

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCursorsRoundTripAndRefusals(t *testing.T) {
	cs := Cursors{Key: []byte("0123456789abcdef0123456789abcdef")}
	spec := Spec{AppID: "app_1", MerchantID: "m1", Dataset: Orders}
	c := ChangeCursor{Mark: "100:105:101,103", AppID: "app_1", MerchantID: "m1", Dataset: Orders, ExportID: "e1"}
	sealed := cs.Seal(c)
	got, err := cs.Open(sealed, spec)
	if err != nil || got != c {
		t.Fatalf("Open(Seal(c)) = %+v, %v; want %+v", got, err, c)
	}
	payload, sig, _ := strings.Cut(strings.TrimPrefix(sealed, cursorPrefix), ".")
	forged := ChangeCursor{Mark: "1:1:", AppID: "app_1", MerchantID: "m1", Dataset: Orders}
	cases := map[string]struct {
		cursor string
		spec   Spec
		reason string
	}{
		"other merchant": {sealed, Spec{AppID: "app_1", MerchantID: "m2", Dataset: Orders}, "another merchant"},
		"other dataset":  {sealed, Spec{AppID: "app_1", MerchantID: "m1", Dataset: Payments}, "dataset orders"},
		"other app":      {sealed, Spec{AppID: "app_2", MerchantID: "m1", Dataset: Orders}, "another app"},
		"other key":      {Cursors{Key: []byte("another key")}.Seal(c), spec, "not issued by this service"},
		"altered":        {cursorPrefix + Cursors{Key: []byte("x")}.Seal(forged)[len(cursorPrefix):strings.LastIndex(Cursors{Key: []byte("x")}.Seal(forged), ".")] + "." + sig, spec, "not issued"},
		"truncated sig":  {cursorPrefix + payload + "." + sig[:10], spec, "not issued"},
		"no prefix":      {strings.TrimPrefix(sealed, cursorPrefix), spec, "malformed"},
		"garbage":        {"c1.!!!", spec, "malformed"},
		"empty":          {"", spec, "malformed"},
	}
	for name, tc := range cases {
		_, err := cs.Open(tc.cursor, tc.spec)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "cursor" || !strings.Contains(ve.Reason, tc.reason) {
			t.Errorf("%s: Open = %v; want a cursor error saying %q", name, err, tc.reason)
		}
	}
}

func TestSpecModes(t *testing.T) {
	base := func() Spec {
		return Spec{ExportID: "e1", MerchantID: "m1", Dataset: Orders}
	}
	ok := base()
	ok.Mode, ok.Cursor = ModeChanges, "c1.x.y"
	if err := ok.Normalize(); err != nil {
		t.Fatalf("change spec refused: %v", err)
	}
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	bad := map[string]func(*Spec){
		"start":     func(s *Spec) { s.Mode, s.Start = ModeChanges, day },
		"end":       func(s *Spec) { s.Mode, s.End = ModeChanges, day },
		"locations": func(s *Spec) { s.Mode, s.Locations = ModeChanges, []string{"L1"} },
		"formats":   func(s *Spec) { s.Mode, s.Formats = ModeChanges, []Format{CloverJSON} },
		"mode":      func(s *Spec) { s.Mode = "since" },
		"cursor":    func(s *Spec) { s.Start, s.End, s.Cursor = day, day.Add(time.Hour), "c1.x.y" },
	}
	for field, f := range bad {
		s := base()
		f(&s)
		var ve *ValidationError
		if err := s.Normalize(); !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("%s: Normalize = %v; want an error on %q", field, err, field)
		}
	}
	w := base()
	w.Mode, w.Start, w.End = "window", day, day.Add(time.Hour)
	if err := w.Normalize(); err != nil || w.Mode != ModeWindow {
		t.Fatalf("window spec: %v, mode %q", err, w.Mode)
	}
}
