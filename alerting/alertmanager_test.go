package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/alertmanagertest"
)

// startAlertmanager runs a real Alertmanager on a generated configuration
// whose control-plane webhook is sink, with short grouping so that a
// notification leaves about a second after an alert arrives.
func startAlertmanager(t *testing.T, sink *webhookSink) *alertmanagertest.Instance {
	t.Helper()
	yml, err := GenerateConfig(Config{
		ControlPlane: &ControlPlaneConfig{URL: sink.URL + "/intake"},
		Route:        RouteConfig{GroupWait: 500 * time.Millisecond, GroupInterval: time.Second, RepeatInterval: time.Hour},
	})
	require.NoError(t, err)
	return alertmanagertest.Start(t, yml)
}

func alertmanagerNotifier(t *testing.T, url string) *Notifier {
	t.Helper()
	am, err := NewAlertmanagerReceiver(url, nil)
	require.NoError(t, err)
	return startNotifier(t, Options{
		Receivers:  map[string]Receiver{"alertmanager": am},
		Timeout:    2 * time.Second,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 250 * time.Millisecond,
	})
}

func TestAlertmanager_FiringThenResolved_ReachWebhookWithLabelsAndRunbook(t *testing.T) {
	sink := newWebhookSink(t)
	am := startAlertmanager(t, sink)
	n := alertmanagerNotifier(t, am.URL())

	a := testAlert("SiteDown", "srv1:9470", SeverityCritical)
	a.Labels["site"] = "shop.example.com"
	a.GeneratorURL = "http://hybrid.example.com/rules/SiteDown"
	n.Send([]Alert{a})

	firing := sink.next(t, 10*time.Second, func(m WebhookMessage) bool { return m.Status == StatusFiring })
	require.Equal(t, ReceiverCritical, firing.Receiver)
	require.Equal(t, map[string]string{"alertname": "SiteDown", "instance": "srv1:9470"}, firing.GroupLabels)
	require.Len(t, firing.Alerts, 1)
	got := firing.Alerts[0]
	require.Equal(t, a.Labels, got.Labels)
	require.Equal(t, "https://runbooks.example.com/SiteDown", got.Annotations["runbook_url"])
	require.Equal(t, a.Annotations, got.Annotations)
	require.Equal(t, a.GeneratorURL, got.GeneratorURL)
	require.Equal(t, a.Fingerprint(), got.Fingerprint, "our fingerprint is Alertmanager's")

	a.EndsAt = time.Now()
	n.Send([]Alert{a})

	resolved := sink.next(t, 10*time.Second, func(m WebhookMessage) bool { return m.Status == StatusResolved })
	require.Equal(t, StatusResolved, resolved.Alerts[0].Status)
	require.Equal(t, "shop.example.com", resolved.Alerts[0].Labels["site"])
	require.False(t, resolved.Alerts[0].EndsAt.IsZero())
}

func TestAlertmanager_DownDuringFault_AlertArrivesOnceItIsBack(t *testing.T) {
	sink := newWebhookSink(t)
	am := startAlertmanager(t, sink)
	am.Stop()
	n := alertmanagerNotifier(t, am.URL())

	n.Send([]Alert{testAlert("DiskFull", "srv2:9470", SeverityCritical)})
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(n.metrics.errors.WithLabelValues("alertmanager")) >= 2
	}, 10*time.Second, 10*time.Millisecond, "delivery fails and is retried while Alertmanager is down")
	require.Zero(t, testutil.ToFloat64(n.metrics.dropped.WithLabelValues("alertmanager", dropQueueFull)))

	am.Start()

	msg := sink.next(t, 15*time.Second, func(m WebhookMessage) bool { return m.Status == StatusFiring })
	require.Equal(t, "DiskFull", msg.Alerts[0].Labels["alertname"])
	require.Equal(t, "srv2:9470", msg.Alerts[0].Labels["instance"])
	// Alertmanager may notify before its answer to our post is read.
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(n.metrics.notifications.WithLabelValues("alertmanager")) >= 1
	}, 5*time.Second, 10*time.Millisecond)
}

func TestAlertmanager_Webhook_DecodesStrictlyAsWebhookMessage(t *testing.T) {
	sink := newWebhookSink(t)
	am := startAlertmanager(t, sink)
	n := alertmanagerNotifier(t, am.URL())

	n.Send([]Alert{testAlert("HighLoad", "srv3:9470", SeverityWarning)})
	sink.next(t, 10*time.Second, func(WebhookMessage) bool { return true })

	// WebhookMessage covers every field Alertmanager 0.25 sends, so the
	// control plane's intake reads Alertmanager and WebhookReceiver alike.
	bodies, _ := sink.requests()
	dec := json.NewDecoder(bytes.NewReader(bodies[0]))
	dec.DisallowUnknownFields()
	var msg WebhookMessage
	require.NoError(t, dec.Decode(&msg), "%s", bodies[0])
	require.Equal(t, "4", msg.Version)
	require.Equal(t, ReceiverWarning, msg.Receiver)
	require.True(t, strings.HasPrefix(msg.GroupKey, "{}/{severity=\"warning\"}:"), msg.GroupKey)
}

func TestAlertmanagerReceiver_PrefixAndBasicAuth_PostsToAPIv2(t *testing.T) {
	type request struct {
		path, user, password string
		alerts               []map[string]any
	}
	requests := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		req.path = r.URL.Path
		req.user, req.password, _ = r.BasicAuth()
		_ = json.NewDecoder(r.Body).Decode(&req.alerts)
		requests <- req
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("hybrid", "s3cret")
	u.Path = "/alertmanager/"
	r, err := NewAlertmanagerReceiver(u.String(), nil)
	require.NoError(t, err)
	a := testAlert("DiskFull", "a:9470", SeverityCritical)
	a.StartsAt, a.EndsAt = time.Unix(1000, 0).UTC(), time.Unix(2000, 0).UTC()

	require.NoError(t, r.Notify(context.Background(), []Alert{a}))

	req := <-requests
	require.Equal(t, "/alertmanager/api/v2/alerts", req.path)
	require.Equal(t, "hybrid", req.user)
	require.Equal(t, "s3cret", req.password)
	require.Len(t, req.alerts, 1)
	require.Equal(t, "DiskFull", req.alerts[0]["labels"].(map[string]any)["alertname"])
	require.Equal(t, "1970-01-01T00:33:20.000Z", req.alerts[0]["endsAt"])
}

func TestAlertmanagerReceiver_BadRequest_IsPermanent_ServerError_IsNot(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusBadRequest)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`"start time must be before end time"`))
	}))
	t.Cleanup(srv.Close)
	r, err := NewAlertmanagerReceiver(srv.URL, nil)
	require.NoError(t, err)
	alerts := []Alert{testAlert("DiskFull", "a:9470", SeverityCritical)}

	err = r.Notify(context.Background(), alerts)
	var perm *PermanentError
	require.ErrorAs(t, err, &perm)
	require.ErrorContains(t, err, "start time must be before end time")

	status.Store(http.StatusServiceUnavailable)
	err = r.Notify(context.Background(), alerts)
	require.Error(t, err)
	require.False(t, errors.As(err, &perm), "%v", err)
}

func TestNewAlertmanagerReceiver_NotHTTPURL_Refused(t *testing.T) {
	for _, raw := range []string{"127.0.0.1:9093", "ftp://am:9093", "http://"} {
		_, err := NewAlertmanagerReceiver(raw, nil)
		require.Error(t, err, raw)
	}
}
