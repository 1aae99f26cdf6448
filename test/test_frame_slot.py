# Copyright 2026 mask2former_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""LatestFrameSlots: newest frame wins, counted drops, fair partial takes, several consumers."""

import threading
import time

from mask2former_ros.core.runtime.frame_slot import LatestFrameSlots, simulate_realtime


def test_newest_item_wins_and_replaced_items_are_counted():
    slots = LatestFrameSlots()
    assert slots.put('front', 1) is False
    assert slots.put('front', 2) is True
    assert slots.put('left', 10) is False
    assert slots.take(timeout=0) == {'front': 2, 'left': 10}
    assert slots.take(timeout=0) == {}  # nothing is re-processed
    counters = slots.counters()
    assert (counters['front'].received, counters['front'].dropped,
            counters['front'].taken) == (2, 1, 1)
    assert (counters['left'].received, counters['left'].dropped,
            counters['left'].taken) == (1, 0, 1)


def test_partial_takes_serve_the_least_recently_served_sources_first():
    slots = LatestFrameSlots()
    served = []
    for round_ in range(6):
        for source in ('a', 'b', 'c'):
            slots.put(source, round_)
        taken = slots.take(timeout=0, max_items=1)
        assert len(taken) == 1
        served.extend(taken)
    # Every source gets its turn although all three always have a frame pending.
    assert served == ['a', 'b', 'c', 'a', 'b', 'c']
    rest = slots.take(timeout=0, max_items=2)
    assert rest == {'a': 5, 'b': 5}  # 'c' was served last round
    assert slots.take(timeout=0) == {}
    dropped = sum(c.dropped for c in slots.counters().values())
    assert dropped == 18 - 8  # every put was either taken or replaced


def test_concurrent_consumers_never_get_the_same_item():
    slots = LatestFrameSlots()
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for source, item in slots.take(timeout=0.05, max_items=1).items():
                with lock:
                    taken.append((source, item))
            time.sleep(0.001)
    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for consumer in consumers:
        consumer.start()
    for i in range(2000):
        slots.put(f'cam{i % 4}', i)
    time.sleep(0.3)
    stop.set()
    for consumer in consumers:
        consumer.join()
    assert len(taken) == len(set(taken))
    counters = slots.counters()
    assert sum(c.received for c in counters.values()) == 2000
    assert sum(c.taken for c in counters.values()) == len(taken)
    assert sum(c.taken + c.dropped for c in counters.values()) == 2000


def test_close_wakes_a_waiting_consumer():
    slots = LatestFrameSlots()
    result = []
    consumer = threading.Thread(target=lambda: result.append(slots.take(timeout=30)))
    consumer.start()
    time.sleep(0.1)
    slots.close()
    consumer.join(2)
    assert not consumer.is_alive() and result == [{}]
    slots.reopen()
    slots.put('x', 1)
    assert slots.take(timeout=1) == {'x': 1}


def test_simulate_realtime_drops_what_a_slow_worker_cannot_take():
    arrivals = [(i * 0.01, i) for i in range(10)]  # 100 Hz

    def slow(item: int) -> int:
        time.sleep(0.035)
        return item
    results, dropped = simulate_realtime(arrivals, slow)
    assert results[0] == 0 and results == sorted(results)
    assert dropped == 10 - len(results) and 2 <= len(results) <= 5
    results, dropped = simulate_realtime(arrivals, lambda item: item)
    assert results == list(range(10)) and dropped == 0
