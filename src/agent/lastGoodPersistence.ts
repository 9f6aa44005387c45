// The thin shell around LastGoodStore: reads a previous agent's last good
// contents from the pins before the first apply, and writes each newly
// accepted one after it. A failure to persist is logged and never stops
// enforcement; the store keeps working from memory.
import type { Logger } from 'pino';
import { LastGoodPins } from '../datapath/lastGoodPins.js';
import { decodePersisted, encodePersisted, type LastGoodStore } from './lastGood.js';

export class LastGoodPersistence {
  private pins: LastGoodPins | null = null;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Restores every persisted object into the store. Call once, before the first resolve. */
  restore(pinDir: string, store: LastGoodStore, objectPath?: string): void {
    try {
      this.pins = LastGoodPins.open(pinDir, objectPath);
    } catch (err) {
      this.log.error({ err }, 'cannot open the persisted last good configuration: it will not survive a restart');
      return;
    }
    const restored: string[] = [];
    for (const [key, payload] of this.pins.readAll()) {
      const persisted = decodePersisted(payload);
      if (!persisted || persisted.id.key !== key) {
        this.log.warn({ object: key }, 'persisted last good content is unreadable: dropped');
        this.pins.delete(key);
        continue;
      }
      const errors = store.restore(persisted);
      if (errors.length)
        this.log.warn(
          { object: key, code: errors[0]!.code },
          `persisted last good content is no longer valid, dropped: ${errors[0]!.message}`,
        );
      else restored.push(key);
    }
    this.log.info(
      { objects: restored.length, created: this.pins.created },
      'last good configuration restored from the pins',
    );
    this.flush(store);
  }

  /** Writes what the store accepted (or forgot) since the last call. */
  flush(store: LastGoodStore): void {
    const queue = store.takePersistQueue();
    if (!this.pins) return;
    for (const [key, persisted] of queue) {
      try {
        if (persisted) this.pins.write(key, encodePersisted(persisted));
        else this.pins.delete(key);
      } catch (err) {
        this.log.error({ err, object: key }, 'could not persist the last good content: a restart would not know it');
      }
    }
  }

  close(): void {
    this.pins?.close();
    this.pins = null;
  }
}
