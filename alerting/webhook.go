package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// WebhookMessage is the body of Alertmanager's webhook notification
// (version 4). WebhookReceiver sends it, and the control plane's intake can
// read it from Alertmanager and from WebhookReceiver alike.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage. A firing alert has a zero
// EndsAt, as Alertmanager sends it.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// WebhookOptions configure a WebhookReceiver. Zero values take the defaults named.
type WebhookOptions struct {
	// Client defaults to http.DefaultClient; the Notifier bounds each attempt.
	Client *http.Client
	// BearerTokenFile, when set, is read on every delivery and sent as
	// "Authorization: Bearer <token>".
	BearerTokenFile string
	// Receiver is the message's receiver field. Default "hybrid".
	Receiver string
	// ExternalURL is the message's externalURL: where a person looks at the alerts.
	ExternalURL string
	// GroupBy are the labels alerts are grouped by, one message per group,
	// as Alertmanager's route would. Default alertname, instance.
	GroupBy []string
	// Now defaults to time.Now; it decides whether an alert is resolved.
	Now func() time.Time
}

// WebhookReceiver POSTs alerts to a URL as Alertmanager's webhook would, one
// message per group. It does not retry by itself: the Notifier does.
type WebhookReceiver struct {
	url  string
	opts WebhookOptions
}

var _ Receiver = (*WebhookReceiver)(nil)

// NewWebhookReceiver sends to rawURL.
func NewWebhookReceiver(rawURL string, opts WebhookOptions) (*WebhookReceiver, error) {
	if err := checkHTTPURL(rawURL); err != nil {
		return nil, fmt.Errorf("webhook url: %w", err)
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Receiver == "" {
		opts.Receiver = "hybrid"
	}
	if len(opts.GroupBy) == 0 {
		opts.GroupBy = defaultGroupBy()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &WebhookReceiver{url: rawURL, opts: opts}, nil
}

// Notify posts one message per group of alerts. A 400 or 422 (the receiver
// refuses the message) is a *PermanentError; every other failure, 401, 403
// and 404 included, is retried, as it usually means a receiver being
// deployed or misconfigured, which someone will fix.
func (w *WebhookReceiver) Notify(ctx context.Context, alerts []Alert) error {
	var token string
	if w.opts.BearerTokenFile != "" {
		b, err := os.ReadFile(w.opts.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("webhook bearer token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	var errs []error
	for _, msg := range w.messages(alerts) {
		if err := w.post(ctx, msg, token); err != nil {
			errs = append(errs, err)
		}
	}
	// A refused group makes the whole a PermanentError; the Notifier then
	// sends the alerts one by one and drops only the refused ones.
	return errors.Join(errs...)
}

func (w *WebhookReceiver) post(ctx context.Context, msg WebhookMessage, token string) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode webhook message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hybrid-alerting")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook %s: %w", redact(w.url), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("post webhook %s: %s: %s", redact(w.url), resp.Status, bytes.TrimSpace(snippet))
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity {
		return &PermanentError{Err: err}
	}
	return err
}

// messages groups alerts by the GroupBy labels, in the order groups first
// appear, and builds each group's message as Alertmanager would.
func (w *WebhookReceiver) messages(alerts []Alert) []WebhookMessage {
	now := w.opts.Now()
	var order []string
	groups := map[string][]Alert{}
	for _, a := range alerts {
		var k strings.Builder
		for _, l := range w.opts.GroupBy {
			k.WriteString(a.Labels[l])
			k.WriteByte(0xff)
		}
		if _, ok := groups[k.String()]; !ok {
			order = append(order, k.String())
		}
		groups[k.String()] = append(groups[k.String()], a)
	}
	msgs := make([]WebhookMessage, 0, len(order))
	for _, k := range order {
		group := groups[k]
		msg := WebhookMessage{
			Version:           "4",
			Status:            StatusResolved,
			Receiver:          w.opts.Receiver,
			GroupLabels:       map[string]string{},
			CommonLabels:      common(group, func(a Alert) map[string]string { return a.Labels }),
			CommonAnnotations: common(group, func(a Alert) map[string]string { return a.Annotations }),
			ExternalURL:       w.opts.ExternalURL,
		}
		for _, l := range w.opts.GroupBy {
			if v := group[0].Labels[l]; v != "" {
				msg.GroupLabels[l] = v
			}
		}
		msg.GroupKey = "{}:" + labelString(msg.GroupLabels)
		for _, a := range group {
			wa := WebhookAlert{
				Status:       a.Status(now),
				Labels:       orEmpty(a.Labels),
				Annotations:  orEmpty(a.Annotations),
				StartsAt:     a.StartsAt,
				GeneratorURL: a.GeneratorURL,
				Fingerprint:  a.Fingerprint(),
			}
			if wa.Status == StatusResolved {
				wa.EndsAt = a.EndsAt
			} else {
				msg.Status = StatusFiring
			}
			msg.Alerts = append(msg.Alerts, wa)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// common is the pairs every alert of group has.
func common(group []Alert, of func(Alert) map[string]string) map[string]string {
	out := maps.Clone(orEmpty(of(group[0])))
	for _, a := range group[1:] {
		m := of(a)
		maps.DeleteFunc(out, func(k, v string) bool { return m[k] != v })
	}
	return out
}

// labelString renders labels as Alertmanager does in a group key:
// {a="1", b="2"}.
func labelString(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http(s) URL", redact(raw))
	}
	return nil
}

// redact keeps a URL's scheme and host only: webhook URLs often carry a
// token in their path, query or user info, and secrets are never logged.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}
