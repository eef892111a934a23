export async function runReproduce(_argv: string[]): Promise<number> {
  process.stderr.write('reproduce: not built yet\n');
  return 1;
}
