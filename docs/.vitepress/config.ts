/**
 * The documentation site (VitePress): docs/ is the Markdown source. Search is VitePress's local MiniSearch
 * index, built with the site, so a reader's browser asks nothing of any outside service; the site loads no
 * outside fonts, scripts or images either (the browser test checks that every request stays on the site).
 */
import { defineConfig, type DefaultTheme } from 'vitepress';

const sidebar: DefaultTheme.SidebarItem[] = [
  {
    text: 'Getting started',
    items: [
      { text: 'Introduction', link: '/' },
      { text: 'Getting started', link: '/getting-started' },
    ],
  },
  {
    text: 'Conversion guide',
    items: [
      { text: 'Converting GLM models', link: '/conversion-guide' },
      { text: 'Models', link: '/models' },
      { text: 'Hugging Face downloads', link: '/hub' },
      { text: 'GGUF export', link: '/gguf' },
    ],
  },
  {
    text: 'Running',
    items: [
      { text: 'On the CPU (the engine)', link: '/engine' },
      { text: 'On a GPU', link: '/gpu' },
      { text: 'On several machines', link: '/distributed' },
      { text: 'Command line reference', link: '/reference/cli' },
    ],
  },
  {
    text: 'The demo API',
    items: [
      { text: 'OpenAI-compatible server', link: '/demo-api' },
      { text: 'HTTP API reference', link: '/reference/http-api' },
      { text: 'Usage', link: '/usage' },
    ],
  },
  {
    text: 'GitHub Actions and workflows',
    items: [
      { text: 'Workflow templates', link: '/workflows' },
      { text: 'Actions reference', link: '/actions' },
      { text: 'Quality gates', link: '/quality-gates' },
      { text: 'Publishing to Spaces', link: '/spaces' },
    ],
  },
  {
    text: 'Runner setup',
    items: [{ text: 'Self-hosted runners', link: '/runner-setup' }],
  },
  {
    text: 'File formats',
    items: [
      { text: 'The .m model file', link: '/model-format' },
      { text: 'The .t tokenizer file', link: '/tokenizer-format' },
    ],
  },
  {
    text: 'Performance',
    items: [
      { text: 'Performance guide', link: '/performance' },
      { text: 'Benchmark history', link: '/benchmark-history' },
    ],
  },
  {
    text: 'Security',
    items: [{ text: 'Forks, tokens and keys', link: '/security' }],
  },
];

export default defineConfig({
  title: 'glm-dllama',
  description: 'GLM-family models in distributed-llama format on affordable hardware: converter, engine, OpenAI-compatible server and model pipeline.',
  lang: 'en-US',
  // README.md files of the docs folder are not pages; the model list has its own generated page.
  srcExclude: ['**/README.md'],
  lastUpdated: false,
  markdown: {
    config(md) {
      // Inline code is literal: the pages quote GitHub expressions such as `${{ github.token }}`, which Vue
      // would otherwise evaluate as its own interpolation (code blocks are already left alone).
      const codeInline = md.renderer.rules.code_inline!;
      md.renderer.rules.code_inline = (tokens, idx, options, env, self) => codeInline(tokens, idx, options, env, self).replace(/^<code/, '<code v-pre');
    },
  },
  // A dead link fails the build (the default); the browser test also crawls the built site for anchors.
  themeConfig: {
    nav: [
      { text: 'Guide', link: '/getting-started' },
      { text: 'Models', link: '/models' },
      { text: 'Reference', items: [
        { text: 'Command line', link: '/reference/cli' },
        { text: 'HTTP API', link: '/reference/http-api' },
        { text: 'Actions', link: '/actions' },
      ] },
    ],
    sidebar,
    outline: { level: [2, 3] },
    search: { provider: 'local' },
    socialLinks: [{ icon: 'github', link: 'https://github.com/glm-dllama/glm-dllama' }],
    footer: { message: 'MIT licensed.' },
  },
});
