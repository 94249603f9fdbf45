/** The tokenizer commands of glm-dllama: convert-tokenizer, tokenize, chat-template. Thin: parse, call the library, print. */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { InputError } from '../converter/errors.js';
import { applyChatTemplate, convertTokenizer, loadTokenizer, parseChatRequest } from '../tokenizer/index.js';

function printable(piece: string): string {
  return JSON.stringify(piece);
}

export function registerTokenizerCommands(program: Command): void {
  program
    .command('convert-tokenizer')
    .description('convert a checkpoint\'s tokenizer (tokenizer.json or ChatGLM tokenizer.model, with tokenizer_config.json) to a .t file')
    .requiredOption('--model <dir>', 'checkpoint directory')
    .requiredOption('--out <file>', 'output .t file')
    .action(async (o: { model: string; out: string }) => {
      const r = await convertTokenizer(o.model, o.out);
      console.log(
        [
          `converted ${r.source} of ${o.model} -> ${r.outFile}`,
          `  vocabulary  ${r.vocabSize} ids, ${r.mergeCount} merges, ${r.addedTokens} added tokens`,
          `  stop ids    ${r.stopIds.length > 0 ? r.stopIds.join(', ') : '(none)'}`,
          `  template    ${r.hasChatTemplate ? 'yes' : 'none'}`,
          `  size        ${r.bytes} bytes`,
        ].join('\n'),
      );
    });

  program
    .command('tokenize')
    .description('encode text and print its token ids and pieces')
    .requiredOption('--tokenizer <file>', '.t file, tokenizer.json, tokenizer.model, or checkpoint directory')
    .option('--json', 'print exactly {"ids":[...],"pieces":[...]}', false)
    .option('--no-special', 'do not add the post-processor\'s special tokens')
    .option('--file <file>', 'read the text from a file (its bytes; invalid UTF-8 becomes U+FFFD)')
    .argument('[text]', 'the text to encode')
    .action(async (text: string | undefined, o: { tokenizer: string; json: boolean; special: boolean; file?: string }) => {
      if ((text === undefined) === (o.file === undefined)) throw new InputError('tokenize', 'give the text either as an argument or with --file');
      const { tokenizer } = await loadTokenizer(o.tokenizer);
      const options = { addSpecialTokens: o.special };
      const encoding = o.file !== undefined ? tokenizer.encodeBytes(await readFile(o.file), options) : tokenizer.encode(text!, options);
      if (o.json) {
        console.log(JSON.stringify({ ids: encoding.ids, pieces: encoding.pieces }));
        return;
      }
      console.log(`${encoding.ids.length} tokens`);
      encoding.ids.forEach((id, i) => console.log(`${String(id).padStart(8)}  ${printable(encoding.pieces[i]!)}`));
    });

  program
    .command('chat-template')
    .description('render a chat with the tokenizer\'s chat template and print the prompt and its ids')
    .requiredOption('--tokenizer <file>', '.t file, tokenizer.json, tokenizer.model, or checkpoint directory')
    .requiredOption('--messages <file>', 'JSON: an array of {role, content} or {"messages": [...], "tools": [...], "enable_thinking": bool, "add_generation_prompt": bool}')
    .option('--json', 'print {"prompt": ..., "ids": [...], "stop_ids": [...]}', false)
    .action(async (o: { tokenizer: string; messages: string; json: boolean }) => {
      const loaded = await loadTokenizer(o.tokenizer);
      if (loaded.chatTemplate === null) throw new InputError(loaded.file, 'has no chat template (tokenizer_config.json chat_template or chat_template.jinja)');
      const text = await readFile(o.messages, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new InputError(o.messages, `cannot read the messages file (${e.code ?? e.message})`);
      });
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new InputError(o.messages, `not valid JSON (${(e as Error).message})`);
      }
      const request = parseChatRequest(json, o.messages);
      const { prompt, ids } = applyChatTemplate(loaded.tokenizer, loaded.chatTemplate, request, loaded.templateTokens);
      if (o.json) {
        console.log(JSON.stringify({ prompt, ids, stop_ids: loaded.stopIds }));
        return;
      }
      console.log(prompt);
      console.log('---');
      console.log(`${ids.length} tokens: ${JSON.stringify(ids)}`);
      console.log(`stop ids: ${JSON.stringify(loaded.stopIds)}`);
    });
}
