() => {
  // [n] in an answer leads to that answer's source n (ids src-<answer>-<n>): its group of
  // sources is shown, the card is brought into view and focused. In the widget the sources
  // open over the lower part of the frame (html[data-sheet=open]); Close or Escape shuts them
  // and gives the focus back to the marker.
  const root = document.documentElement;
  let opener = null;
  const close = () => {
    if (root.dataset.sheet !== 'open') return;
    delete root.dataset.sheet;
    if (opener && document.contains(opener)) opener.focus({preventScroll: true});
    opener = null;
  };
  const open = (id, link) => {
    const target = document.getElementById(id);
    if (!target) return;
    const group = target.closest('.answer-sources');
    document.querySelectorAll('.answer-sources').forEach((g) => { g.hidden = g !== group; });
    opener = link;
    root.dataset.sheet = 'open';
    target.scrollIntoView({block: 'nearest'});
    target.classList.add('flash');
    target.setAttribute('tabindex', '-1');
    target.focus({preventScroll: true});
    setTimeout(() => target.classList.remove('flash'), 1500);
  };
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href^="#src-"]');
    if (link) {
      event.preventDefault();
      open(link.getAttribute('href').slice(1), link);
      return;
    }
    if (event.target.closest('.sheet-close')) close();
    if (event.target.closest('#new-conversation')) { opener = null; close(); }
  }, true);
  document.addEventListener('keydown', (event) => { if (event.key === 'Escape') close(); });
}
