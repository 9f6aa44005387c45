import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { BenchSandbox } from './sandbox.js';
import { Datapath } from '../src/datapath/datapath.js';
import { parseGlobalConfig, readConfigDocuments } from '../src/config/index.js';
import { osmConfigText } from './policyGen.js';
import { PolicyCompiler } from '../src/policy/compile.js';
const sb = new BenchSandbox();
try {
  const dp = Datapath.open({ pinDir: sb.pinDir('prof'), cgroupWalkStart: 1 });
  sb.onCleanup(() => dp.close());
  const session = new Session(); session.connect();
  await session.post('Profiler.enable'); await session.post('Profiler.start');
  const text = osmConfigText(100000);
  let t = performance.now();
  const docs = readConfigDocuments(text, 'x');
  console.log('readYaml', performance.now() - t); t = performance.now();
  const r = parseGlobalConfig(docs.documents[0]!.data, docs.documents[0]!.ref);
  console.log('parseGlobal', performance.now() - t, r.ok); t = performance.now();
  if (!r.ok) throw new Error();
  const st = new PolicyCompiler().compile({ global: r.value, allowlists: new Map(), resolved: new Map(), pods: [] });
  console.log('compile', performance.now() - t); t = performance.now();
  const res = dp.apply(st);
  console.log('apply', performance.now() - t, res.trieUpserts);
  const { profile } = await session.post('Profiler.stop');
  writeFileSync('/tmp/mgbench-prof.cpuprofile', JSON.stringify(profile));
} finally { sb.cleanup(); }
