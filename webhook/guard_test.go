package webhook_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd/webhook"
)

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		public   bool // accepted with allowPrivate=false
		dev      bool // accepted with allowPrivate=true
		wantErr  error
		contains string
	}{
		{url: "https://hooks.example.com/exportd", public: true, dev: true},
		{url: "http://hooks.example.com:8080/x?token=abc#frag", public: true, dev: true},
		{url: "HTTPS://Hooks.Example.COM/", public: true, dev: true},
		{url: "https://8.8.8.8/hook", public: true, dev: true},
		{url: "https://[2606:4700::1111]/hook", public: true, dev: true},
		{url: "https://[::ffff:8.8.8.8]/hook", public: true, dev: true},
		{url: "http://localhost:8080/hook", public: true, dev: true}, // a name: refused at connect time
		{url: "https://" + strings.Repeat("a", 2048-len("https://.com")) + ".com", public: true, dev: true},

		{url: "http://127.0.0.1:8080/hook", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://127.8.9.10/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[::1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[::ffff:127.0.0.1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[::ffff:10.0.0.1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[::127.0.0.1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[64:ff9b::a9fe:a9fe]/", dev: true, wantErr: webhook.ErrForbiddenAddress}, // NAT64 of 169.254.169.254
		{url: "http://[2002:7f00:1::]/", dev: true, wantErr: webhook.ErrForbiddenAddress},      // 6to4 of 127.0.0.1
		{url: "http://10.0.0.1/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://172.16.5.4/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://172.31.255.255/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://192.168.0.1/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://169.254.169.254/latest/meta-data/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://100.64.0.1/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://100.127.255.255/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://0.0.0.0/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://255.255.255.255/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://224.0.0.1/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[::]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[fc00::1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[fe80::1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[fe80::1%25eth0]/", dev: true, wantErr: webhook.ErrForbiddenAddress},
		{url: "http://[ff02::1]/", dev: true, wantErr: webhook.ErrForbiddenAddress},

		{url: "", wantErr: webhook.ErrInvalidURL},
		{url: "ftp://example.com/", wantErr: webhook.ErrInvalidURL, contains: "scheme"},
		{url: "file:///etc/passwd", wantErr: webhook.ErrInvalidURL, contains: "scheme"},
		{url: "gopher://example.com/", wantErr: webhook.ErrInvalidURL},
		{url: "//example.com/", wantErr: webhook.ErrInvalidURL},
		{url: "example.com/hook", wantErr: webhook.ErrInvalidURL},
		{url: "http:example.com", wantErr: webhook.ErrInvalidURL},
		{url: "http:///path", wantErr: webhook.ErrInvalidURL, contains: "missing host"},
		{url: "http://:80/", wantErr: webhook.ErrInvalidURL, contains: "missing host"},
		{url: "http://user:pass@example.com/", wantErr: webhook.ErrInvalidURL, contains: "user information"},
		{url: "http://user@example.com/", wantErr: webhook.ErrInvalidURL, contains: "user information"},
		{url: "http://example.com:0/", wantErr: webhook.ErrInvalidURL, contains: "port"},
		{url: "http://example.com:70000/", wantErr: webhook.ErrInvalidURL, contains: "port"},
		{url: "http://exa mple.com/", wantErr: webhook.ErrInvalidURL},
		{url: "http://127.1/", wantErr: webhook.ErrInvalidURL},
		{url: "http://2130706433/", wantErr: webhook.ErrInvalidURL},
		{url: "http://0x7f000001/", wantErr: webhook.ErrInvalidURL},
		{url: "http://0177.0.0.1/", wantErr: webhook.ErrInvalidURL},
		{url: "http://1.2.3.4.5/", wantErr: webhook.ErrInvalidURL},
		{url: "https://" + strings.Repeat("a", 2048) + ".com", wantErr: webhook.ErrInvalidURL, contains: "at most 2048"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			check := func(allowPrivate, ok bool) {
				t.Helper()
				err := webhook.ValidateURL(tc.url, allowPrivate)
				if ok {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, webhook.ErrInvalidURL)
				require.ErrorIs(t, err, tc.wantErr)
				require.Contains(t, err.Error(), tc.contains)
			}
			check(false, tc.public)
			check(true, tc.dev)
		})
	}
}

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/exportd?x=1",
		"http://127.0.0.1:8080/",
		"http://[::ffff:127.0.0.1]/",
		"http://[fe80::1%25eth0]:80/",
		"http://user:pass@host/",
		"ftp://x/",
		"http://0x7f.1/",
		"http://a.b.c.",
		"http://%31%32%37.0.0.1/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		errPublic := webhook.ValidateURL(raw, false)
		errDev := webhook.ValidateURL(raw, true)
		if errPublic == nil && errDev != nil {
			t.Fatalf("%q accepted for public delivery but refused for dev: %v", raw, errDev)
		}
		if errDev != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q accepted but unparsable: %v", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || len(raw) > webhook.MaxURLLength {
			t.Fatalf("%q accepted: scheme %q, host %q, user %v", raw, u.Scheme, u.Hostname(), u.User)
		}
	})
}
