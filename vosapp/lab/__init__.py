"""Notebook-facing tools: switches, lab endpoints, parameter widgets, ladders, audio quality.

Import the submodules you need; this package itself imports nothing heavy, so ``import
vosapp.lab`` stays cheap in a CLI or a test that never plots:

* ``vosapp.lab.attach`` -- ``LabSwitch`` (a switch in the kernel), ``attach()`` (a background
  ``vosapp serve`` through its control channel), ``BackgroundSwitch`` (start one);
* ``vosapp.lab.phones`` -- ``LabPhone`` (registers, right or wrong password; places and
  answers calls with real RTP: ``vosapp.lab.calls``) and ``LabRegistrar`` (a carrier
  registrar with digest); ``vosapp.lab.vendor`` -- ``LabVendor`` (answers: echo, play);
  ``vosapp.lab.carrier`` -- ``LabCarrier`` (calls in); ``vosapp.lab.impairment`` -- loss,
  bursts, jitter, reordering on a lab endpoint's sending side;
* ``vosapp.lab.scenarios`` -- virtual-time brute force and outbound registration runs;
* ``vosapp.lab.widgets`` -- the parameter editor (``ParameterForm``, ``ParameterEditor``);
* ``vosapp.lab.ladder`` -- ladder diagrams (static and live); ``vosapp.lab.quality`` -- audio.
"""
