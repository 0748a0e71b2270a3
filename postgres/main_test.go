package postgres_test

import (
	"testing"

	"github.com/exportd/exportd/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
