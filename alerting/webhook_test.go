package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/stretchr/testify/require"
)

// webhookSink is an httptest server that records the messages posted to it.
type webhookSink struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	status   int // answer; 0 is 200
	messages chan WebhookMessage
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{messages: make(chan WebhookMessage, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		status := s.status
		s.bodies = append(s.bodies, body)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if status != 0 {
			http.Error(w, "no", status)
			return
		}
		var msg WebhookMessage
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Errorf("webhook body: %v\n%s", err, body)
		}
		s.messages <- msg
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookSink) requests() ([][]byte, []http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...), append([]http.Header(nil), s.headers...)
}

func (s *webhookSink) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// next waits for a message matching match, skipping others.
func (s *webhookSink) next(t *testing.T, timeout time.Duration, match func(WebhookMessage) bool) WebhookMessage {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case msg := <-s.messages:
			if match(msg) {
				return msg
			}
		case <-deadline:
			t.Fatalf("no matching webhook message within %s", timeout)
		}
	}
}

func TestWebhookReceiver_GroupsLikeAlertmanager_OneMessagePerGroup(t *testing.T) {
	sink := newWebhookSink(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	r, err := NewWebhookReceiver(sink.URL, WebhookOptions{ExternalURL: "https://hybrid.example.com", Now: func() time.Time { return now }})
	require.NoError(t, err)
	disk := testAlert("DiskFull", "a:9470", SeverityCritical)
	disk.StartsAt, disk.EndsAt = now.Add(-time.Hour), now.Add(4*time.Minute)
	disk.GeneratorURL = "https://hybrid.example.com/rules/DiskFull"
	diskResolved := testAlert("DiskFull", "a:9470", SeverityCritical)
	diskResolved.Labels["mountpoint"] = "/home"
	diskResolved.StartsAt, diskResolved.EndsAt = now.Add(-time.Hour), now.Add(-time.Minute)
	load := testAlert("HighLoad", "b:9470", SeverityWarning)
	load.StartsAt, load.EndsAt = now.Add(-time.Hour), now.Add(-time.Minute)

	require.NoError(t, r.Notify(context.Background(), []Alert{disk, load, diskResolved}))

	bodies, headers := sink.requests()
	require.Len(t, bodies, 2)
	first := <-sink.messages
	require.Equal(t, "4", first.Version)
	require.Equal(t, StatusFiring, first.Status, "a group with one alert firing is firing")
	require.Equal(t, "hybrid", first.Receiver)
	require.Equal(t, "https://hybrid.example.com", first.ExternalURL)
	require.Equal(t, map[string]string{"alertname": "DiskFull", "instance": "a:9470"}, first.GroupLabels)
	require.Equal(t, `{}:{alertname="DiskFull", instance="a:9470"}`, first.GroupKey)
	require.Equal(t, map[string]string{"alertname": "DiskFull", "instance": "a:9470", "severity": "critical"}, first.CommonLabels)
	require.Equal(t, disk.Annotations, first.CommonAnnotations)
	require.Len(t, first.Alerts, 2)
	require.Equal(t, StatusFiring, first.Alerts[0].Status)
	require.True(t, first.Alerts[0].EndsAt.IsZero(), "Alertmanager sends a firing alert without its end")
	require.Equal(t, disk.GeneratorURL, first.Alerts[0].GeneratorURL)
	require.Equal(t, disk.Fingerprint(), first.Alerts[0].Fingerprint)
	require.Equal(t, StatusResolved, first.Alerts[1].Status)
	require.True(t, diskResolved.EndsAt.Equal(first.Alerts[1].EndsAt))

	second := <-sink.messages
	require.Equal(t, StatusResolved, second.Status)
	require.Equal(t, "HighLoad", second.CommonLabels["alertname"])
	require.Equal(t, "https://runbooks.example.com/HighLoad", second.Alerts[0].Annotations["runbook_url"])
	require.Equal(t, "application/json", headers[0].Get("Content-Type"))
}

func TestWebhookReceiver_Message_DecodesStrictlyAsAlertmanagersOwn(t *testing.T) {
	sink := newWebhookSink(t)
	r, err := NewWebhookReceiver(sink.URL, WebhookOptions{})
	require.NoError(t, err)

	require.NoError(t, r.Notify(context.Background(), []Alert{testAlert("DiskFull", "a:9470", SeverityCritical)}))

	// Every field we send is one Alertmanager's webhook sends.
	bodies, _ := sink.requests()
	dec := json.NewDecoder(bytes.NewReader(bodies[0]))
	dec.DisallowUnknownFields()
	var msg amwebhook.Message
	require.NoError(t, dec.Decode(&msg))
	require.Equal(t, "4", msg.Version)
	require.Equal(t, "DiskFull", msg.Alerts[0].Labels["alertname"])
}

func TestWebhookReceiver_BearerTokenFile_SentAsAuthorization(t *testing.T) {
	sink := newWebhookSink(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	r, err := NewWebhookReceiver(sink.URL, WebhookOptions{BearerTokenFile: tokenFile})
	require.NoError(t, err)

	require.NoError(t, r.Notify(context.Background(), []Alert{testAlert("DiskFull", "a:9470", SeverityCritical)}))

	_, headers := sink.requests()
	require.Equal(t, "Bearer s3cret", headers[0].Get("Authorization"))
}

func TestWebhookReceiver_StatusCodes_ClassifiedForRetry(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusNotFound, false},
		{http.StatusUnauthorized, false},
		{http.StatusTooManyRequests, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			sink := newWebhookSink(t)
			sink.setStatus(tc.status)
			r, err := NewWebhookReceiver(sink.URL+"/hook?token=s3cret", WebhookOptions{})
			require.NoError(t, err)

			err = r.Notify(context.Background(), []Alert{testAlert("DiskFull", "a:9470", SeverityCritical)})

			require.Error(t, err)
			var perm *PermanentError
			require.Equal(t, tc.permanent, errors.As(err, &perm), "%v", err)
			require.NotContains(t, err.Error(), "s3cret", "secrets in URLs are never logged")
		})
	}
}

func TestNotifier_NoAlertmanager_WebhookReceiverGetsFiringThenResolved(t *testing.T) {
	sink := newWebhookSink(t)
	r, err := NewWebhookReceiver(sink.URL, WebhookOptions{})
	require.NoError(t, err)
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"incidents": r}})

	a := testAlert("SiteDown", "a:9470", SeverityCritical)
	n.Send([]Alert{a})
	firing := sink.next(t, 5*time.Second, func(m WebhookMessage) bool { return m.Status == StatusFiring })
	require.Equal(t, "https://runbooks.example.com/SiteDown", firing.Alerts[0].Annotations["runbook_url"])

	a.EndsAt = time.Now()
	n.Send([]Alert{a})
	resolved := sink.next(t, 5*time.Second, func(m WebhookMessage) bool { return m.Status == StatusResolved })
	require.Equal(t, "SiteDown", resolved.Alerts[0].Labels["alertname"])
}

func TestNotifier_NoAlertmanager_WebhookDownThenUp_AlertArrives(t *testing.T) {
	sink := newWebhookSink(t)
	sink.setStatus(http.StatusServiceUnavailable)
	r, err := NewWebhookReceiver(sink.URL, WebhookOptions{})
	require.NoError(t, err)
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"incidents": r}})

	n.Send([]Alert{testAlert("SiteDown", "a:9470", SeverityCritical)})
	require.Eventually(t, func() bool {
		bodies, _ := sink.requests()
		return len(bodies) >= 2
	}, 5*time.Second, 5*time.Millisecond, "retried while the receiver answers 503")
	sink.setStatus(0)

	msg := sink.next(t, 5*time.Second, func(WebhookMessage) bool { return true })
	require.Equal(t, "SiteDown", msg.Alerts[0].Labels["alertname"])
}

func TestNotifier_NoAlertmanager_RecordingReceiverGetsAlerts(t *testing.T) {
	rec := &recordingReceiver{}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"incidents": rec}})

	n.Send([]Alert{testAlert("SiteDown", "a:9470", SeverityCritical), testAlert("DiskFull", "b:9470", SeverityWarning)})

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.ElementsMatch(t, []string{"SiteDown", "DiskFull"}, names(rec.snapshot()))
}

func TestNewWebhookReceiver_NotHTTPURL_Refused(t *testing.T) {
	_, err := NewWebhookReceiver("ftp://example.com/x", WebhookOptions{})
	require.Error(t, err)
	_, err = NewWebhookReceiver("/relative", WebhookOptions{})
	require.Error(t, err)
}
