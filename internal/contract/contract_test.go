package contract

import "testing"

// The values below cross process boundaries (pod specs built by one release, read by another), so a
// change to any of them must be deliberate.
func TestEnvName(t *testing.T) {
	cases := map[string]string{
		FlagBatchSize:       "KUBETRAIN_BATCH_SIZE",
		FlagCheckpointEvery: "KUBETRAIN_CHECKPOINT_EVERY_EPOCHS",
		FlagModel:           "KUBETRAIN_MODEL",
	}
	for flag, want := range cases {
		t.Run(flag, func(t *testing.T) {
			if got := EnvName(flag); got != want {
				t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
			}
		})
	}
}

func TestClassifyExit(t *testing.T) {
	cases := map[string]struct {
		code int32
		want ExitClass
	}{
		"success":        {0, ExitClassSuccess},
		"invalid config": {64, ExitClassPermanent},
		"invalid data":   {65, ExitClassPermanent},
		"diverged":       {66, ExitClassPermanent},
		"retriable":      {75, ExitClassRetriable},
		"sigterm":        {143, ExitClassDisruption},
		"oom killed":     {137, ExitClassRetriable},
		"panic":          {2, ExitClassRetriable},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ClassifyExit(tc.code); got != tc.want {
				t.Errorf("ClassifyExit(%d) = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
}
