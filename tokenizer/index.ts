/** The tokenizer's public surface: load, encode, decode, stream, chat templates, .t files. */
export { Tokenizer, TokenIdError, wellFormed, type Encoding, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { StreamDecoder } from './stream.js';
export { parseTokenizerJson, readTokenizerJson, type TokenizerSpec } from './spec.js';
export { parseTiktokenModel } from './tiktoken.js';
export { encodeTFile, decodeTFile, readTFile, writeTFile, type TFile, type TFileContent } from './t-file.js';
export { applyChatTemplate, parseChatRequest, promptPrefixIds, renderChatTemplate, CHAT_ROLES, type ChatMessage, type ChatPrompt, type ChatRequest } from './chat-template.js';
export { convertTokenizer, hasTokenizer, loadTokenizer, saveTokenizer, tokenizerPathFor, type ConvertTokenizerResult, type LoadedTokenizer, type TokenizerSource } from './load.js';
export { RegexTranslationError, translateOnigurumaSource } from './regex.js';
