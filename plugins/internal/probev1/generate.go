package probev1

//go:generate sh gen.sh .
