package postgres

// The SQL of a page of orders, for the plan test.
var (
	BeginPageSQL     = beginPageSQL
	ItemsSQL         = itemsSQL
	OrderPaymentsSQL = orderPaymentsSQL
)
