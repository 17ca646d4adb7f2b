package agentapi

import (
	"errors"
	"testing"
	"time"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("callback-secret-0123456789abcdef")
	body := []byte(`{"id":"j1","status":"Success"}`)
	signedAt := time.Unix(1_700_000_000, 0)
	header := Sign(secret, body, signedAt)

	cases := map[string]struct {
		secret, body []byte
		header       string
		now          time.Time
		want         error
	}{
		"valid":                {secret, body, header, signedAt.Add(time.Minute), nil},
		"tampered body":        {secret, []byte(`{"id":"j1","status":"Failure"}`), header, signedAt, ErrSignatureMismatch},
		"other secret":         {[]byte("another-secret"), body, header, signedAt, ErrSignatureMismatch},
		"old timestamp":        {secret, body, header, signedAt.Add(DefaultSignatureTolerance + time.Second), ErrSignatureExpired},
		"future timestamp":     {secret, body, header, signedAt.Add(-DefaultSignatureTolerance - time.Second), ErrSignatureExpired},
		"timestamp changed":    {secret, body, "t=1700000300" + header[len("t=1700000000"):], signedAt, ErrSignatureMismatch},
		"missing":              {secret, body, "", signedAt, ErrSignatureMissing},
		"no v1":                {secret, body, "t=1700000000", signedAt, ErrSignatureMissing},
		"garbage":              {secret, body, "t=1700000000,v1=zz", signedAt, ErrSignatureMissing},
		"rotation: second v1":  {secret, body, header[:len("t=1700000000")] + ",v1=" + string(make64('0')) + header[len("t=1700000000"):], signedAt, nil},
		"rotation: none match": {secret, body, "t=1700000000,v1=" + string(make64('0')), signedAt, ErrSignatureMismatch},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := VerifySignature(tc.secret, tc.body, tc.header, tc.now, DefaultSignatureTolerance)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifySignature(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}
