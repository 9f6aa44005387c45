// Child process for persistence tests: load, apply a policy, attach, and exit,
// closing every file descriptor it had. Enforcement must outlive it.
//   node applyAndExit.js PIN_DIR CGROUP POLICY_JSON
import { Datapath } from '../../src/datapath/datapath.js';
import type { DesiredState } from '../../src/datapath/desired.js';
import { cgroupLevel } from '../../src/node/cgroup.js';

const [pinDir, cgroup, json] = process.argv.slice(2);
if (!pinDir || !cgroup || !json) {
  process.stderr.write('usage: applyAndExit PIN_DIR CGROUP STATE_JSON\n');
  process.exit(2);
}
const state = JSON.parse(json, (k, v) => (k === 'cgroupId' ? BigInt(v) : v)) as DesiredState;
const dp = Datapath.open({ pinDir, cgroupWalkStart: cgroupLevel(cgroup) });
dp.apply(state);
const report = dp.attach(cgroup);
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
