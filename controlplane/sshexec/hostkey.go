package sshexec

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// HostKey is a server's public host key as the store pins it.
type HostKey struct {
	// Fingerprint is "SHA256:<base64>", as ssh-keygen -l prints it.
	Fingerprint string
	// AuthorizedKey is the key in authorized_keys format, one line without
	// comment or newline: "ssh-ed25519 AAAA...". Config.HostKey takes it.
	AuthorizedKey string
}

func hostKeyOf(key ssh.PublicKey) HostKey {
	return HostKey{
		Fingerprint:   ssh.FingerprintSHA256(key),
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))),
	}
}

// HostKeyChangedError is a server that presented a host key other than the
// pinned one: the server was reinstalled, or someone is in the middle.
// Nothing was sent to it.
type HostKeyChangedError struct {
	Address   string
	Expected  string // fingerprint of the pinned key
	Presented string // fingerprint of the key the server presented
	// PresentedKey is the presented key, for a person to pin after checking it.
	PresentedKey HostKey
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("host key of %s changed: pinned %s, the server presented %s; refusing to connect "+
		"(if the server was reinstalled, check the new key on its console and pin it again)",
		e.Address, e.Expected, e.Presented)
}

// HostKeyUnknownError is a server contacted with no pinned key while trust on
// first use was not allowed. Nothing was sent to it.
type HostKeyUnknownError struct {
	Address      string
	PresentedKey HostKey
}

func (e *HostKeyUnknownError) Error() string {
	return fmt.Sprintf("host key of %s (%s) is not pinned and trust on first use was not allowed; refusing to connect",
		e.Address, e.PresentedKey.Fingerprint)
}

// hostKeyCheck is one connection's host key policy. It remembers the key the
// server presented, and after a first use it holds the server to that key for
// the connection's later key exchanges.
type hostKeyCheck struct {
	address string
	tofu    bool

	mu       sync.Mutex
	pinned   ssh.PublicKey // nil until known
	seen     HostKey
	rejected error // the error that refused the key, if any
}

func newHostKeyCheck(address, pinned string, tofu bool) (*hostKeyCheck, error) {
	h := &hostKeyCheck{address: address, tofu: tofu}
	if pinned != "" {
		key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(pinned))
		if err != nil {
			return nil, fmt.Errorf("parse pinned host key of %s: %w", address, err)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("pinned host key of %s holds more than one key", address)
		}
		h.pinned = key
	}
	return h, nil
}

func (h *hostKeyCheck) callback(_ string, _ net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	presented := hostKeyOf(key)
	h.seen = presented
	switch {
	case h.pinned != nil && bytes.Equal(h.pinned.Marshal(), key.Marshal()):
		return nil
	case h.pinned != nil:
		h.rejected = &HostKeyChangedError{
			Address:      h.address,
			Expected:     ssh.FingerprintSHA256(h.pinned),
			Presented:    presented.Fingerprint,
			PresentedKey: presented,
		}
	case h.tofu:
		h.pinned = key
		return nil
	default:
		h.rejected = &HostKeyUnknownError{Address: h.address, PresentedKey: presented}
	}
	return h.rejected
}

func (h *hostKeyCheck) result() (seen HostKey, rejected error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen, h.rejected
}

// algorithms asks the server for the pinned key's type, so that a server
// with several host keys presents the pinned one; with no pin, the
// preference is ed25519, then ECDSA, then RSA (with SHA-2).
func (h *hostKeyCheck) algorithms() []string {
	if h.pinned == nil {
		return []string{
			ssh.KeyAlgoED25519,
			ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
		}
	}
	if h.pinned.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{h.pinned.Type()}
}
