// A BPF object loaded without pins, for what runs programs outside the agent:
// BPF_PROG_TEST_RUN (the DNS reader's fuzz test and benchmark) and a single
// program attached to a cgroup for a measurement. Nothing here touches the
// agent's pinned maps or links.
import {
  libbpf,
  type BpfLinkPtr,
  type BpfObjectPtr,
  type BpfProgramFd,
  type TestRunResult,
} from '../../native/libbpf.js';
import type { MapName } from './abi.generated.js';
import { MapHandle } from './maps.js';
import { MeshgateError } from '../errors.js';

export type { TestRunResult } from '../../native/libbpf.js';

export class UnpinnedObject {
  private obj: BpfObjectPtr | null;
  private readonly path: string;

  private constructor(obj: BpfObjectPtr, path: string) {
    this.obj = obj;
    this.path = path;
  }

  /** Opens and loads `path`; maxEntries resizes maps before the load. */
  static load(path: string, maxEntries: Readonly<Record<string, number>> = {}): UnpinnedObject {
    const obj = libbpf.openObject(path);
    try {
      for (const [name, n] of Object.entries(maxEntries)) libbpf.setMapMaxEntries(libbpf.findMap(obj, name), n, name);
      libbpf.loadObject(obj, path);
      return new UnpinnedObject(obj, path);
    } catch (err) {
      libbpf.closeObject(obj);
      throw err;
    }
  }

  private get object(): BpfObjectPtr {
    if (!this.obj) throw new MeshgateError('MG_OBJECT_CLOSED', `BPF object ${this.path} is closed`);
    return this.obj;
  }

  /** A typed handle on one of meshgate's maps (sizes checked against the ABI). */
  map(name: MapName): MapHandle {
    const m = libbpf.findMap(this.object, name);
    return new MapHandle(name, libbpf.mapFd(m), { keySize: libbpf.mapKeySize(m), valueSize: libbpf.mapValueSize(m) });
  }

  /** Raw update/lookup of a map that is not meshgate's (a test object's own). */
  rawUpdate(name: string, key: Buffer, value: Buffer): void {
    libbpf.mapUpdate(libbpf.mapFd(libbpf.findMap(this.object, name)), key, value, 0, name);
  }

  rawLookup(name: string, key: Buffer, value: Buffer): boolean {
    return libbpf.mapLookup(libbpf.mapFd(libbpf.findMap(this.object, name)), key, value, name);
  }

  program(name: string): BpfProgramFd {
    return libbpf.programFd(libbpf.findProgram(this.object, name)) as BpfProgramFd;
  }

  /** BPF_PROG_TEST_RUN of a program on one frame, `repeat` times. */
  testRun(program: string, frame: Buffer, repeat = 1): TestRunResult {
    return libbpf.testRun(this.program(program), frame, repeat, program);
  }

  /** Attaches one program to a cgroup; returns the function that detaches it. */
  attachToCgroup(program: string, cgroupPath: string): () => void {
    const fd = libbpf.openDirectory(cgroupPath);
    let link: BpfLinkPtr;
    try {
      link = libbpf.attachCgroup(libbpf.findProgram(this.object, program), fd, `${program} to ${cgroupPath}`);
    } finally {
      libbpf.close(fd);
    }
    return () => {
      libbpf.detachLink(link, program);
      libbpf.releaseLink(link);
    };
  }

  close(): void {
    if (this.obj) libbpf.closeObject(this.obj);
    this.obj = null;
  }
}
