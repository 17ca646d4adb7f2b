package agentapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a callback's signature: "t=<unix seconds>,v1=<hex>",
// where the hex is HMAC-SHA256, keyed with the callback secret, of
// "<unix seconds>." followed by the body. The timestamp is signed with the
// body so that a recorded callback cannot be replayed later.
const SignatureHeader = "X-Agent-Signature"

// DefaultSignatureTolerance is how far a callback's timestamp may be from the
// receiver's clock: a retry is signed afresh, so only clock skew and transit
// time count.
const DefaultSignatureTolerance = 5 * time.Minute

// Errors of VerifySignature, for a receiver that answers differently
// (a 401 for a bad signature, a log line for an old one).
var (
	ErrSignatureMissing  = errors.New("callback signature missing or malformed")
	ErrSignatureMismatch = errors.New("callback signature does not match the body")
	ErrSignatureExpired  = errors.New("callback signature timestamp outside the tolerance")
)

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifySignature checks header (a SignatureHeader value) against body and
// secret, and that its timestamp is within tolerance of now. Several v1
// values are allowed (one per secret while the secret is being rotated): one
// matching is enough.
func VerifySignature(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMissing
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrSignatureMissing
			}
			sigs = append(sigs, sig)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMissing
	}
	want := signature(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	// Checked after the MAC, so that only a genuine signature's age is reported.
	if skew := now.Sub(time.Unix(unix, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrSignatureExpired, skew.Round(time.Second), tolerance)
	}
	return nil
}
