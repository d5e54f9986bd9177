package vip_test

import (
	"errors"
	"fmt"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }
