import defaultTheme from 'tailwindcss/defaultTheme';
import temporal, { textStyles } from './node_modules/@temporalio/ui/dist/theme/plugin.js';

// The library's components carry their Tailwind classes in dist/, so they are scanned too.
export default {
  content: ['./src/**/*.{html,js,svelte}', './node_modules/@temporalio/ui/dist/**/*.{js,svelte}'],
  darkMode: ['selector', '[data-theme="dark"]'],
  theme: {
    fontFamily: {
      sans: ['Inter', ...defaultTheme.fontFamily.sans],
      mono: ['Noto Sans Mono', ...defaultTheme.fontFamily.mono],
    },
    extend: { zIndex: { 100: '100' } },
  },
  plugins: [temporal, textStyles],
};
