package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// ExportActivity reads from a workflow's history how long its Export
// activity took, scheduled to completed, and in how many attempts: a retry
// (a heartbeat that timed out, say) shows here rather than as a slow run.
func ExportActivity(ctx context.Context, c client.Client, workflowID string) (seconds float64, attempts int32, err error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	names := map[int64]string{}
	scheduled := map[int64]time.Time{}
	var exports int32 // the workflow retries the step: each attempt is an activity
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, 0, err
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			scheduled[ev.GetEventId()] = ev.GetEventTime().AsTime()
			if names[ev.GetEventId()] == "Export" {
				exports++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			sid := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if names[sid] == "Export" {
				return ev.GetEventTime().AsTime().Sub(scheduled[sid]).Seconds(), exports, nil
			}
		}
	}
	return 0, 0, errors.New("no completed Export activity in the history")
}

// Timeline lists a workflow's history events with their offsets from its
// start, in milliseconds: where the time of a small export goes.
func Timeline(ctx context.Context, c client.Client, workflowID string) (string, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out strings.Builder
	var start time.Time
	names := map[int64]string{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "", err
		}
		at := ev.GetEventTime().AsTime()
		if start.IsZero() {
			start = at
		}
		what := strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			what += " " + names[ev.GetEventId()]
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			what += " " + names[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			what += " " + names[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			what += " " + ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration().String()
		}
		fmt.Fprintf(&out, "  %7.1f  %s\n", float64(at.Sub(start).Microseconds())/1000, what)
	}
	return strings.TrimRight(out.String(), "\n"), nil
}
