// Reads decision events from the mg_events ring buffer without blocking the
// event loop: libbpf's non-blocking ring_buffer__consume runs on a timer, and
// its callback fires synchronously on this thread.
import {
  copyFromPointer,
  libbpf,
  registerSampleCallback,
  unregisterCallback,
  type RingBufferPtr,
} from '../../native/libbpf.js';
import { EVENT_SIZE, decodeEvent, type KernelEvent } from './codec.js';
import type { MapHandle } from './maps.js';

export class EventReader {
  private rb: RingBufferPtr | null;
  private readonly callback: unknown;
  private readonly timer: NodeJS.Timeout;

  constructor(events: MapHandle, onEvent: (event: KernelEvent) => void, intervalMs = 50) {
    this.callback = registerSampleCallback((_ctx, data, size) => {
      if (size >= EVENT_SIZE) onEvent(decodeEvent(copyFromPointer(data, EVENT_SIZE)));
      return 0;
    });
    this.rb = libbpf.ringBufferNew(events.fd, this.callback);
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Delivers every event that is ready; returns how many. */
  poll(): number {
    return this.rb ? libbpf.ringBufferConsume(this.rb) : 0;
  }

  close(): void {
    clearInterval(this.timer);
    if (this.rb) libbpf.ringBufferFree(this.rb);
    this.rb = null;
    unregisterCallback(this.callback);
  }
}
