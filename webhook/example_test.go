package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/exportd/exportd/webhook"
)

func ExampleSign() {
	secret, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	fmt.Println(webhook.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A receiver checks each webhook before trusting it.
func ExampleVerify() {
	secret, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Printf("verified %s: %s\n", r.Header.Get(webhook.HeaderID), body)
	}))
	defer receiver.Close()

	s := webhook.NewSender(true) // the receiver listens on loopback
	_, err := s.Send(context.Background(), webhook.Message{
		URL: receiver.URL, ID: "exp_42-succeeded", Body: []byte(`{"status":"succeeded"}`), Secret: secret,
	})
	fmt.Println("delivered:", err == nil)
	// Output:
	// verified exp_42-succeeded: {"status":"succeeded"}
	// delivered: true
}

// Callers turn Send's error into a retry decision.
func ExampleRetryable() {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusGone)
	}))
	defer receiver.Close()

	_, err := webhook.NewSender(true).Send(context.Background(), webhook.Message{URL: receiver.URL, ID: "evt_1"})
	fmt.Println(err)
	fmt.Println("retry:", webhook.Retryable(err), "gone:", errors.Is(err, webhook.ErrGone))
	// Output:
	// webhook endpoint answered 410 Gone
	// retry: false gone: true
}
