package format_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/format/internal/recordtest"
)

// goldenSHA256 holds the sha256 of every format's file for every dataset,
// of recordtest.Source(d, 300) and of an empty file, as the writers wrote
// them before the record schema moved into one column table. A change here is
// a change of the files every client reads: make it on purpose, never as a
// side effect of a refactoring.
var goldenSHA256 = map[string]string{
	"parquet/orders/0":              "1200f3b11f3be103f7a82421276dc32bc269f027e96c0036a74ed82d79a9f000",
	"parquet/orders/300":            "148cd3fd92ab05ed81db00621de6641bf0d2d870f54de6327b0c9af646a80140",
	"parquet/payments/0":            "0f828f7253ac8f2a22117423fa780ae1892a22176895c8bfd0b1205641f8d752",
	"parquet/payments/300":          "c986d96b9aae6ee353e013c50dc18ffdceee441a4ec0105dd56d68629cb365f6",
	"arrow/orders/0":                "9133f81420ace7604b634b94dc5198527896c37cb5ab0e7469cb813b41bfb60b",
	"arrow/orders/300":              "dda263da60080cffdc7d170ea48fa64d9231caeece066694ad09fb5b34a70f29",
	"arrow/payments/0":              "5c0ebead7db63277164a2b048f873b3d0b39661591a2f9cb5da14421368d7e21",
	"arrow/payments/300":            "0f4225728f6b5e50cb5c8d4f58dbe0d4ca0cfcbdcabda2ccdafbb85f51868a21",
	"jsonl.gz/orders/0":             "458c5a203299dd326aa747fee1bbc7709bfbd560507d1603459d9f7d9eb6be76",
	"jsonl.gz/orders/300":           "cf51c831a78ba627df78b9dc6defb55e23ae5345a6d6e5216d7a54d88901b0b9",
	"jsonl.gz/payments/0":           "458c5a203299dd326aa747fee1bbc7709bfbd560507d1603459d9f7d9eb6be76",
	"jsonl.gz/payments/300":         "f8432b5e5fe793634368783d677db3dec443d63abc9e9aedbbf248c4f545d2af",
	"csv.gz/orders/0":               "e243baf826976d26d2a0667e0e4cc10aa0d0d4253b1d21a8571daa29d30fa68d",
	"csv.gz/orders/300":             "5b5698b3b49b531dae10e3f08db6c990f9521e450a64c28c80dc7e0abd9cdbb9",
	"csv.gz/payments/0":             "1a4b7c1abf28d886618c4a17860421e7e3ae0b00f5bba81bfec1669347cde3b6",
	"csv.gz/payments/300":           "e878929948afa0647bd612465a2c8c531383bd86b159f6d5abdb06f02ef89bb7",
	"clover-json/orders/0":          "a91d7cc1eff74cb5a904d6073dd7724daedc69c4d432de62a1630a2e51bf94a6",
	"clover-json/orders/300":        "b3ac7ae79c40973ecf64da542947f6947291b42355ee11bc6a8aecae4e57fe15",
	"clover-json/payments/0":        "a91d7cc1eff74cb5a904d6073dd7724daedc69c4d432de62a1630a2e51bf94a6",
	"clover-json/payments/300":      "f3ae066eee0bc52dcac4c3008f6e62192e55c29323790f271fdadfa0209ba54a",
	"doshii-json.gzip/orders/0":     "f71b09f7461b46283ce6778a8f9499491ca129cf732fc4a69b2945fdd9ae6166",
	"doshii-json.gzip/orders/300":   "ace5e156d8616de5a9a42609346a936acefeb05ed144391b8506157bcb7945e6",
	"doshii-json.gzip/payments/0":   "f71b09f7461b46283ce6778a8f9499491ca129cf732fc4a69b2945fdd9ae6166",
	"doshii-json.gzip/payments/300": "38de548a5b3e113e5a76538e571af80b2dc531b08166547fe8d505e076b9cab0",
}

// TestGoldenBytes pins the bytes of every format, so a reshaping of the
// writers is proven to leave their output alone.
func TestGoldenBytes(t *testing.T) {
	formats := append(slices.Clone(exportd.Formats), exportd.CloverJSON, exportd.DoshiiJSON)
	for _, f := range formats {
		for _, d := range recordtest.Datasets {
			for _, n := range []int{0, 300} {
				name := fmt.Sprintf("%s/%s/%d", f, d, n)
				t.Run(name, func(t *testing.T) {
					file := recordtest.Write(t, writerFor(f, d), recordtest.Source(d, n), 0)
					sum := sha256.Sum256(file)
					require.Equal(t, goldenSHA256[name], hex.EncodeToString(sum[:]), "%d bytes", len(file))
				})
			}
		}
	}
}
