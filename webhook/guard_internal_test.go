package webhook

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckDial(t *testing.T) {
	for _, tc := range []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp6", "[2606:4700::1111]:443", true},
		{"tcp6", "[::ffff:8.8.8.8]:443", true},
		{"tcp6", "[64:ff9b::808:808]:443", true}, // NAT64 of 8.8.8.8
		{"tcp4", "100.63.255.255:80", true},      // just below CGNAT
		{"tcp4", "172.32.0.1:80", true},          // just above 172.16/12

		{"tcp4", "127.0.0.1:80", false},
		{"tcp4", "127.255.255.254:80", false},
		{"tcp6", "[::1]:80", false},
		{"tcp6", "[::ffff:127.0.0.1]:80", false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp4", "10.255.255.53:53", false},
		{"tcp4", "172.16.0.1:80", false},
		{"tcp4", "192.168.1.1:80", false},
		{"tcp4", "100.64.0.1:80", false},
		{"tcp4", "0.0.0.0:80", false},
		{"tcp4", "0.1.2.3:80", false},
		{"tcp4", "239.255.255.250:1900", false},
		{"tcp4", "255.255.255.255:80", false},
		{"tcp4", "198.18.0.1:80", false},
		{"tcp6", "[::]:80", false},
		{"tcp6", "[fd12:3456::1]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"tcp6", "[fec0::1]:80", false},
		{"tcp6", "[ff02::1]:80", false},
		{"tcp6", "[64:ff9b::7f00:1]:80", false}, // NAT64 of 127.0.0.1
		{"tcp6", "[64:ff9b:1::a00:1]:80", false},
		{"tcp6", "[2002:a9fe:a9fe::1]:80", false}, // 6to4 of 169.254.169.254
		{"udp4", "8.8.8.8:53", false},
		{"tcp4", "not-an-address:80", false},
	} {
		err := checkDial(tc.network, tc.address)
		if tc.ok {
			require.NoError(t, err, tc.address)
			continue
		}
		require.True(t, errors.Is(err, ErrForbiddenAddress), "%s %s: %v", tc.network, tc.address, err)
	}
	require.True(t, forbidden(netip.Addr{}), "the zero address is refused")
}
