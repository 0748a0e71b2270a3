package wiring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/exportd/exportd/postgres"
)

// demoApps are the apps `dev` creates: one that installed two merchants,
// and another that must never see their exports.
var demoApps = []struct {
	name      string
	merchants []int // indexes into postgres.DefaultSeedMerchants
}{
	{"Demo App", []int{0, 1}},
	{"Other App", []int{2}},
}

// SeedDemo loads the demo data (a no-op for merchants that have it) into
// s.Pool and makes sure the demo apps exist, reusing the credentials of
// an earlier run.
func (s *Stack) SeedDemo(ctx context.Context, access *postgres.Access) ([]AppInfo, error) {
	merchants := postgres.DefaultSeedMerchants()
	for i := range merchants {
		merchants[i].Orders = 2_000
	}
	merchants[0].Orders = s.Config.SeedOrders
	log := s.Config.Logger
	_, err := postgres.Seed(ctx, s.Pool, postgres.SeedOptions{
		Seed: 1, Merchants: merchants,
		Progress: func(m postgres.SeededMerchant) {
			if m.Skipped {
				log.Info("demo data present", "merchant", m.ID)
				return
			}
			log.Info("demo data seeded", "merchant", m.ID, "orders", m.Orders, "transactions", m.Transactions, "elapsed", m.Elapsed)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("error seeding demo data: %w", err)
	}

	var prev Info
	infoPath := s.Config.InfoPath
	if infoPath == "" {
		infoPath = filepath.Join(s.Config.DataDir, InfoFile)
	}
	if b, err := os.ReadFile(infoPath); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	apps := make([]AppInfo, 0, len(demoApps))
	for _, d := range demoApps {
		app, err := s.demoApp(ctx, access, d.name, prev)
		if err != nil {
			return nil, err
		}
		app.Merchants = nil
		for _, i := range d.merchants {
			if err := access.Install(ctx, app.AppID, merchants[i].ID); err != nil {
				return nil, fmt.Errorf("error installing %s for %s: %w", d.name, merchants[i].ID, err)
			}
			app.Merchants = append(app.Merchants, merchants[i].ID)
		}
		apps = append(apps, app)
	}
	return apps, nil
}

// demoApp returns the named app of an earlier run if its key still works,
// or creates it with a fresh key.
func (s *Stack) demoApp(ctx context.Context, access *postgres.Access, name string, prev Info) (AppInfo, error) {
	for _, p := range prev.Apps {
		if p.Name != name {
			continue
		}
		app, err := access.AppByAPIKey(ctx, p.APIKey)
		if err == nil && app.ID == p.AppID {
			return p, nil
		}
		if err != nil && !errors.Is(err, postgres.ErrNotFound) {
			return AppInfo{}, err
		}
	}
	creds, err := access.CreateApp(ctx, name)
	if err != nil {
		return AppInfo{}, fmt.Errorf("error creating demo app: %w", err)
	}
	key, err := access.CreateAPIKey(ctx, creds.ID)
	if err != nil {
		return AppInfo{}, fmt.Errorf("error creating demo key: %w", err)
	}
	return AppInfo{Name: name, AppID: creds.ID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret, APIKey: key.Key}, nil
}
