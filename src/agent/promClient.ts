// The four prom-client classes the agent uses, loaded from their own files. prom-client's index
// also loads its Pushgateway and cluster aggregator, which bring node:https, node:tls, node:zlib,
// node:cluster and node:perf_hooks into the process: about 5 MB of RSS that an agent with a 60 MB
// idle budget (SPEC §7) does not spend on code it never runs (docs/decisions.md). The types are
// prom-client's own; test/unit/agent/agentFootprint.test.ts checks these are the classes the index exports.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof Prom.Registry;
export const Counter = load('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof Prom.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof Prom.Histogram;
export type Registry = Prom.Registry;
export type Counter = Prom.Counter;
export type Gauge = Prom.Gauge;
export type Histogram = Prom.Histogram;
