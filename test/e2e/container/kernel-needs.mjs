// Run inside the agent's container by main.ts (the image's own modules): loads the datapath and
// attaches it to a test cgroup, past the preflight, so the kernel itself says whether the
// container's capabilities suffice. Prints one JSON line: {"ok":true} or the stage that failed
// (open: maps and programs, attach: the cgroup links) and the kernel's error.
import { Datapath } from '/opt/meshgate/dist/src/datapath/datapath.js';
import { cgroupLevel } from '/opt/meshgate/dist/src/node/cgroup.js';

// argv: pin dir, cgroup to attach to, and a DesiredState as JSON (the host's test helpers build it,
// so its shape follows the datapath's): attach refuses to run before one complete apply.
const [pinDir, cgroup, desired] = process.argv.slice(2);
let stage = 'open';
let dp = null;
try {
  dp = Datapath.open({ pinDir, cgroupWalkStart: cgroupLevel(cgroup) });
  stage = 'apply';
  dp.apply(JSON.parse(desired));
  stage = 'attach';
  dp.attach(cgroup);
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  const message = String(err?.message ?? err);
  const verifier = /verifier|R\d+ |invalid|pointer|unbounded/i.test(message) ? 'verifier' : undefined;
  console.log(JSON.stringify({ ok: false, stage, kind: verifier, error: message.split('\n').slice(0, 3).join(' | ').slice(0, 400) }));
} finally {
  try { dp?.close(); } catch { /* closing is not what is tested */ }
}
