package query

import "errors"

// The named errors of a query: errors.Is tells them apart.
var (
	// ErrNoData: the query answered nothing (an empty vector, no rows).
	ErrNoData = errors.New("query returned no data")
	// ErrManyValues: more than one series or row, so no single number.
	ErrManyValues = errors.New("query returned more than one value")
	// ErrNotNumber: the value is not a number (a string column, NULL, NaN text).
	ErrNotNumber = errors.New("query value is not a number")
	// ErrUnavailable: the server could not be reached or answered an error.
	ErrUnavailable = errors.New("query source unavailable")
	// ErrBadQuery: the server refused the query itself (syntax, unknown table).
	ErrBadQuery = errors.New("query refused by the server")
)
