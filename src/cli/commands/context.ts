// What every command module gets: the program to register on, and the exit code to set.
import { Option, type Command } from 'commander';
import { DEFAULT_PIN_DIR } from '../../datapath/loader.js';

export interface CliContext {
  readonly program: Command;
  /** The process exit code: 0 ok, 1 failure or invalid input, 2 usage; commands may define more. */
  exitCode: number;
}

export const pinDirOption = (): Option =>
  new Option('--pin-dir <dir>', 'bpffs directory of the pins').default(DEFAULT_PIN_DIR);

export const collect = (value: string, previous: string[]): string[] => [...previous, value];
