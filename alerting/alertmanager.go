package alerting

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"
)

// AlertmanagerReceiver posts alerts to one Alertmanager's API v2
// (POST /api/v2/alerts). Give the Notifier one per Alertmanager of a
// cluster: Alertmanagers share silences and notification logs, not alerts.
type AlertmanagerReceiver struct {
	url string
	api *client.AlertmanagerAPI
}

var _ Receiver = (*AlertmanagerReceiver)(nil)

// NewAlertmanagerReceiver talks to the Alertmanager at rawURL (scheme, host,
// and the --web.route-prefix if any; user:password@ for basic auth). A nil
// httpClient is http.DefaultClient; the Notifier bounds each attempt.
func NewAlertmanagerReceiver(rawURL string, httpClient *http.Client) (*AlertmanagerReceiver, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("alertmanager url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alertmanager url %q: want http(s)://host[:port][/prefix]", u.Redacted())
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	rt := httptransport.NewWithClient(u.Host, strings.TrimSuffix(u.Path, "/")+client.DefaultBasePath, []string{u.Scheme}, httpClient)
	if u.User != nil {
		password, _ := u.User.Password()
		rt.DefaultAuthentication = httptransport.BasicAuth(u.User.Username(), password)
	}
	u.User = nil
	return &AlertmanagerReceiver{url: u.String(), api: client.New(rt, strfmt.Default)}, nil
}

// Notify posts alerts in one request. Alertmanager's 400 (it refuses the
// alerts) is a *PermanentError; anything else failing is worth retrying.
func (r *AlertmanagerReceiver) Notify(ctx context.Context, alerts []Alert) error {
	postable := make(models.PostableAlerts, 0, len(alerts))
	for _, a := range alerts {
		postable = append(postable, &models.PostableAlert{
			Alert: models.Alert{
				Labels:       models.LabelSet(a.Labels),
				GeneratorURL: strfmt.URI(a.GeneratorURL),
			},
			Annotations: models.LabelSet(a.Annotations),
			StartsAt:    strfmt.DateTime(a.StartsAt),
			EndsAt:      strfmt.DateTime(a.EndsAt),
		})
	}
	// Params made with a context carry no timeout of their own: ctx bounds
	// the request.
	params := alert.NewPostAlertsParamsWithContext(ctx).WithAlerts(postable)
	_, err := r.api.Alert.PostAlerts(params)
	if err == nil {
		return nil
	}
	var bad *alert.PostAlertsBadRequest
	if errors.As(err, &bad) {
		return &PermanentError{Err: fmt.Errorf("post alerts to %s: %s", r.url, bad.Payload)}
	}
	return fmt.Errorf("post alerts to %s: %w", r.url, err)
}
