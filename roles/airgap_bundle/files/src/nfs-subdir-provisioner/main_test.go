package main

import (
	"strings"
	"testing"
)

func env(values map[string]string) func(string) string {
	return func(key string) string { return values[key] }
}

func TestLeaderElectionDefaultsAndSlowControlPlane(t *testing.T) {
	for _, values := range []map[string]string{
		{},
		{"LEASE_DURATION": "120s", "RENEW_DEADLINE": "90s", "RETRY_PERIOD": "15s"},
	} {
		opts, err := leaderElectionOptions(env(values))
		if err != nil || len(opts) != 3 {
			t.Fatalf("%v: got %d options, error %v", values, len(opts), err)
		}
	}
}

func TestLeaderElectionRefusesWhatTheElectorWouldPanicOn(t *testing.T) {
	for _, c := range []struct {
		values map[string]string
		want   string
	}{
		{map[string]string{"LEASE_DURATION": "2 minutes"}, `LEASE_DURATION="2 minutes" is not a positive duration`},
		{map[string]string{"RETRY_PERIOD": "-1s"}, `RETRY_PERIOD="-1s" is not a positive duration`},
		{map[string]string{"RENEW_DEADLINE": "15s"}, "LEASE_DURATION (15s) must be longer than RENEW_DEADLINE (15s)"},
		{map[string]string{"LEASE_DURATION": "120s", "RENEW_DEADLINE": "90s", "RETRY_PERIOD": "80s"},
			"RENEW_DEADLINE (1m30s) must be longer than 1.2 x RETRY_PERIOD (1m20s)"},
	} {
		_, err := leaderElectionOptions(env(c.values))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.values, err, c.want)
		}
	}
}
