package sshexec

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutput_SecretSplitAcrossWrites_Redacted(t *testing.T) {
	o := newOutput([]string{"s3cret-value", "", "other"})
	for _, chunk := range []string{"pw=s3c", "ret-va", "lue and o", "the", "r end s3cr"} {
		_, _ = o.Write([]byte(chunk))
	}
	require.Equal(t, "pw=*** and *** end s3cr", o.String())
}

func TestOutput_SecretAcrossTailStart_NoPartShown(t *testing.T) {
	secret := "ABCDEFGHIJKLMNOP"
	o := newOutput([]string{secret})
	// The secret straddles the point where the tail starts.
	_, _ = o.Write([]byte(strings.Repeat("x", 100) + secret))
	_, _ = o.Write([]byte(strings.Repeat("y", OutputTail-5)))
	got := o.String()
	require.Len(t, got, OutputTail)
	require.NotContains(t, got, "LMNOP")
	require.True(t, strings.HasSuffix(got, "***"+strings.Repeat("y", OutputTail-5)))
}

func TestOutput_NoSecrets_KeepsLastBytes(t *testing.T) {
	o := newOutput(nil)
	for i := 0; i < 300; i++ {
		_, _ = o.Write([]byte(strings.Repeat(string(rune('a'+i%26)), 1000)))
	}
	got := o.String()
	require.Len(t, got, OutputTail)
	require.True(t, strings.HasSuffix(got, strings.Repeat(string(rune('a'+299%26)), 1000)))
}
