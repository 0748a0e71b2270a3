package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// MaxURLLength bounds a callback URL, as browsers and most servers do.
const MaxURLLength = 2048

// ErrInvalidURL is wrapped by ValidateURL's errors, so the API can map
// them to a user-facing invalid-request problem in one place.
var ErrInvalidURL = errors.New("invalid webhook url")

// ErrForbiddenAddress is wrapped whenever a destination is refused for
// being inside a private network, at validation or at connect time.
var ErrForbiddenAddress = errors.New("webhook destination address not allowed")

// ValidateURL rejects callback URLs that can never be delivered to: not
// http(s), no host, credentials, too long, or a literal IP in a private
// range (unless allowPrivate). Host names are only checked when Send
// connects, against the addresses they resolve to then.
func ValidateURL(raw string, allowPrivate bool) error {
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidURL, len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not url.Error's text, which repeats the URL, query tokens and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q, want http or https", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: want scheme://host/path", ErrInvalidURL)
	}
	// Credentials in the URL would be sent to the receiver and land in
	// our logs; clients that need them use headers.
	if u.User != nil {
		return fmt.Errorf("%w: must not contain user information", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q out of range", ErrInvalidURL, p)
		}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		// A zone only makes sense for link-local scopes, which are private.
		if !allowPrivate && (forbidden(addr) || addr.Zone() != "") {
			return fmt.Errorf("%w: %w: %s", ErrInvalidURL, ErrForbiddenAddress, addr)
		}
		return nil
	}
	// Resolvers built on inet_aton read "127.1", "2130706433" or
	// "0x7f000001" as addresses; no real DNS name ends in a number.
	if numericLabel(host) {
		return fmt.Errorf("%w: host %q is neither a DNS name nor a dotted-quad or bracketed IPv6 address", ErrInvalidURL, host)
	}
	return nil
}

// numericLabel reports whether host's last label is decimal or 0x-hex, as
// the WHATWG URL standard decides that a host is an IPv4 address.
func numericLabel(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// Ranges forbidden beyond what netip's predicates cover. Each is either
// internal to some network or reaches the local host on some systems.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"; Linux connects 0.0.0.0 to the local host
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT, shared inside providers
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking, used for internal test networks
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the limited broadcast address
	netip.MustParsePrefix("::/96"),          // deprecated IPv4-compatible addresses
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64, translated inside the network
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
}

// Prefixes whose addresses embed an IPv4 address that a translator or
// relay would connect to, so the embedded address is what is checked.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 well-known NAT64
	sixToFour   = netip.MustParsePrefix("2002::/16")    // 6to4
)

// forbidden reports whether addr is one Send must never connect to:
// loopback, private, link-local (the cloud metadata service included),
// unspecified, multicast, and the ranges above, in any IPv6 disguise.
func forbidden(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return true
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(addr) {
			return true
		}
	}
	b := addr.As16()
	switch {
	case nat64Prefix.Contains(addr):
		return forbidden(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(addr):
		return forbidden(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return false
}

// checkDial is the connect-time guard: it sees the address the socket is
// about to connect to, after DNS, so neither rebinding nor a name that
// resolves inside our network gets past it.
func checkDial(network, address string) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenAddress, address)
	}
	if forbidden(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// control is the net.Dialer.Control of the Sender's client. It reads
// AllowPrivate on every connection, so the field stays authoritative.
func (s *Sender) control(network, address string, _ syscall.RawConn) error {
	if s.AllowPrivate {
		return nil
	}
	return checkDial(network, address)
}
