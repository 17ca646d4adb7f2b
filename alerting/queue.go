package alerting

import (
	"container/list"
	"sync"
)

// queue holds the alerts one receiver has not accepted yet: at most one per
// label set (the newest state), at most capacity in all, oldest first.
type queue struct {
	mu       sync.Mutex
	capacity int
	order    *list.List // of Alert; front is the oldest
	byKey    map[string]*list.Element
	ready    chan struct{}
}

func newQueue(capacity int) *queue {
	return &queue{
		capacity: capacity,
		order:    list.New(),
		byKey:    map[string]*list.Element{},
		ready:    make(chan struct{}, 1),
	}
}

// push adds alerts as the newest; an alert already queued is replaced and
// moves to the back. It returns how many of the oldest it dropped to stay
// within capacity.
func (q *queue) push(alerts []Alert) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, a := range alerts {
		k := a.key()
		if e, ok := q.byKey[k]; ok {
			e.Value = a
			q.order.MoveToBack(e)
			continue
		}
		q.byKey[k] = q.order.PushBack(a)
	}
	dropped = q.trim()
	q.signal()
	return dropped
}

// take removes and returns up to n of the oldest alerts.
func (q *queue) take(n int) []Alert {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := make([]Alert, 0, min(n, q.order.Len()))
	for len(batch) < n && q.order.Len() > 0 {
		a := q.order.Remove(q.order.Front()).(Alert)
		delete(q.byKey, a.key())
		batch = append(batch, a)
	}
	return batch
}

// requeue puts back, as the oldest, a batch that could not be delivered,
// except the alerts a newer state has been pushed for meanwhile. It returns
// how many of the oldest it dropped to stay within capacity.
func (q *queue) requeue(batch []Alert) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(batch) - 1; i >= 0; i-- {
		k := batch[i].key()
		if _, newer := q.byKey[k]; newer {
			continue
		}
		q.byKey[k] = q.order.PushFront(batch[i])
	}
	dropped = q.trim()
	q.signal()
	return dropped
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.order.Len()
}

func (q *queue) trim() (dropped int) {
	for q.order.Len() > q.capacity {
		a := q.order.Remove(q.order.Front()).(Alert)
		delete(q.byKey, a.key())
		dropped++
	}
	return dropped
}

func (q *queue) signal() {
	if q.order.Len() == 0 {
		return
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
